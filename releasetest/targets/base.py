"""What every deploy target yields: an endpoint handle the suites talk to, and a lifecycle."""

from __future__ import annotations

import abc
import os
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


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def group_pids(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc: gunicorn master and workers."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def group_rss_bytes(pgid: int) -> int | None:
    """Resident memory of a process group; None where /proc is not available."""
    if not os.path.isdir("/proc"):
        return None
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in group_pids(pgid):
        try:
            with open(f"/proc/{pid}/statm", encoding="ascii") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    return total


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

    def facts(self) -> dict[str, Any]:
        """What the deploy left on this machine (process, port, files), kept in the verdict even
        when the deploy failed, so cleanup can be checked."""
        return {}

    def __enter__(self) -> EndpointHandle:
        return self.deploy()

    def __exit__(self, *exc: object) -> None:
        self.teardown()
