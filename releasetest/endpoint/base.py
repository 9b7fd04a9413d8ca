"""What every deploy target is: a lifecycle (deploy, teardown) that yields an endpoint handle."""

from __future__ import annotations

import abc
from typing import Any

from releasetest.endpoint.handle import EndpointHandle


class Endpoint(abc.ABC):
    """A deployed release with a lifecycle, like pytest-django's ``LiveServer``.

    :meth:`deploy` returns only once the endpoint is ready (liveness answers and a golden
    prediction matches) or raises :class:`~releasetest.errors.DeployError` naming the cause.
    :meth:`teardown` is safe to call at any time, any number of times.
    """

    target: str = ""

    def start(self) -> None:
        """Begin deploying without waiting for readiness, so the endpoint's cold start overlaps the
        caller's own work (pytest collecting the suites); :meth:`deploy` finishes it. Targets whose
        deploy is one remote call start nothing here."""
        return None

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

    def isolation_line(self) -> str | None:
        """The sandbox the release's code runs in here (its one line), None where it runs elsewhere;
        kept in the verdict's deploy record, so a failed deploy says it too."""
        return None

    def notes(self) -> list[str]:
        """What the deploy found and fixed on this machine (e.g. a killed run's leftovers), one line
        each, for the verdict's warnings."""
        return []

    def __enter__(self) -> EndpointHandle:
        return self.deploy()

    def __exit__(self, *exc: object) -> None:
        self.teardown()

