"""What every deploy target yields: an endpoint handle the suites talk to, and a lifecycle."""

from __future__ import annotations

import abc
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


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

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def log_tail(self, lines: int = 40) -> str | None:
        return read_tail(Path(self.log_path), lines) if self.log_path else None

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


def read_tail(path: Path, lines: int = 40) -> str | None:
    """Last ``lines`` lines of a log file, or None when there is none yet."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as f:
            return "".join(deque(f, maxlen=lines)).rstrip("\n") or None
    except FileNotFoundError:
        return None


class Endpoint(abc.ABC):
    """A deployed release with a lifecycle, like pytest-django's ``LiveServer``.

    :meth:`deploy` returns only once the endpoint is ready (liveness answers and a golden
    prediction matches) or raises :class:`~releasetest.errors.DeployError` naming the cause.
    :meth:`teardown` is safe to call at any time, any number of times.
    """

    target: str = ""

    @abc.abstractmethod
    def deploy(self) -> EndpointHandle: ...

    @abc.abstractmethod
    def teardown(self) -> None: ...

    @property
    @abc.abstractmethod
    def handle(self) -> EndpointHandle | None: ...

    def log_tail(self, lines: int = 40) -> str | None:
        return self.handle.log_tail(lines) if self.handle else None

    def __enter__(self) -> EndpointHandle:
        return self.deploy()

    def __exit__(self, *exc: object) -> None:
        self.teardown()
