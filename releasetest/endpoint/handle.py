"""The endpoint as a client sees it: URIs, key and forensics, as plain data xdist can hand over."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from releasetest.endpoint.process import process_alive
from releasetest.files import read_tail


@dataclass(frozen=True)
class EndpointHandle:
    """A running endpoint as a client sees it.

    Plain data so the xdist controller can hand it to workers through ``workerinput``; the key
    never leaves it through :meth:`describe`, which is what the verdict records.
    """

    target: str
    scoring_uri: str
    liveness_uri: str
    swagger_uri: str
    key: str | None = field(default=None, repr=False)
    log_path: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    #: Sent with every request, e.g. ``azureml-model-deployment`` to pin an Azure ML deployment.
    extra_headers: dict[str, str] = field(default_factory=dict)

    def headers(self) -> dict[str, str]:
        auth = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        return {**self.extra_headers, **auth}

    def log_tail(self, lines: int = 40) -> str | None:
        return read_tail(Path(self.log_path), lines) if self.log_path else None

    def alive(self) -> bool | None:
        """Whether the server process still runs; None when there is no local process to look at."""
        pid = self.info.get("pid")
        return None if pid is None else process_alive(int(pid))

    @property
    def timeout_s(self) -> float:
        """Read timeout for one request: the endpoint's scoring timeout plus time to answer."""
        return self.info.get("scoring_timeout_ms", 60_000) / 1000 + 5

    def describe(self) -> dict[str, Any]:
        """Everything but the key: what the verdict and report show."""
        return {
            "target": self.target,
            "scoring_uri": self.scoring_uri,
            "liveness_uri": self.liveness_uri,
            "swagger_uri": self.swagger_uri,
            "auth": "key" if self.key else "none",
            "log": self.log_path,
            **self.info,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EndpointHandle:
        return cls(**data)

