"""The two pytest-xdist roles, one object each (as xdist's own ``DSession`` and ``WorkerInteractor``).

The controller deploys once, before the workers start, hands each worker the outcome and a
run-private scratch folder through ``workerinput``, and takes back its findings and endpoint logs
from ``workeroutput``; it alone writes files. A worker runs its tests against the handed-over
endpoint, holding the run's suite lock around each (see :mod:`releasetest.wiring.suite_lock`).
The hand-over is typed both ways (:class:`WorkerInput`, :class:`WorkerOutput`) under one key.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest

from releasetest.endpoint.deployment import Deployment
from releasetest.endpoint.handle import EndpointHandle
from releasetest.errors import DeployError
from releasetest.run import ReleaseRun
from releasetest.wiring.fixtures import suite_of
from releasetest.wiring.keys import RUN_KEY
from releasetest.wiring.suite_lock import suite_lock

#: The one ``workerinput`` / ``workeroutput`` key of releasetest.
KEY = "releasetest"


@dataclass(frozen=True)
class WorkerInput:
    """What the controller hands each worker: the deploy's outcome and the run's scratch folder."""

    scratch: str
    #: The ready endpoint (:meth:`EndpointHandle.to_dict`), or None when the deploy failed.
    endpoint: dict[str, Any] | None
    deploy_error: str | None
    deploy_log_tail: str | None

    @classmethod
    def of(cls, deployment: Deployment, scratch: Path) -> WorkerInput:
        failure = deployment.failure
        return cls(scratch=str(scratch),
                   endpoint=deployment.handle.to_dict() if deployment.handle and failure is None else None,
                   deploy_error=failure.cause if failure else None,
                   deploy_log_tail=failure.log_tail if failure else None)

    def deployment(self) -> Deployment:
        """The controller's deployment as this worker sees it: ready or failed, nothing to stop."""
        failure = DeployError(self.deploy_error, self.deploy_log_tail) if self.deploy_error is not None else None
        return Deployment.handed_over(EndpointHandle.from_dict(self.endpoint) if self.endpoint else None, failure)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerInput:
        return cls(**data)


@dataclass(frozen=True)
class WorkerOutput:
    """What a worker gives back: its recorded findings, and the logs its endpoints (the
    champion's) wrote, by file name with a ``-gwN`` suffix."""

    findings: dict[str, Any]
    logs: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerOutput:
        return cls(**data)


class XdistController:
    """The controller's role, registered in ``pytest_sessionstart`` when xdist distributes the run."""

    name = "releasetest-xdist-controller"

    def __init__(self, run: ReleaseRun):
        self.run = run
        self.scratch = Path(tempfile.mkdtemp(prefix="releasetest-run-"))

    def deploy(self) -> None:
        """Before xdist starts its nodes; a failure is kept on the deployment, every worker's tests
        that use the endpoint fail with it, and the verdict BLOCKs."""
        try:
            self.run.deployment.wait()
        except DeployError:
            pass

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[KEY] = WorkerInput.of(self.run.deployment, self.scratch).to_dict()

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        data = getattr(node, "workeroutput", {}).get(KEY)
        if data is None:  # the worker crashed before its end
            return
        output = WorkerOutput.from_dict(data)
        self.run.merge_findings(output.findings)
        folder = self.run.settings.verdict.parent
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in output.logs.items():
            (folder / Path(name).name).write_text(text, encoding="utf-8")

    def pytest_unconfigure(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


class XdistWorker:
    """A worker's role, registered in ``pytest_configure`` on each xdist worker."""

    name = "releasetest-xdist-worker"

    def __init__(self, config: pytest.Config, given: WorkerInput):
        self.config = config
        self.given = given
        self.id: str = config.workerinput["workerid"]  # type: ignore[attr-defined]
        self.scratch = Path(given.scratch)

    @classmethod
    def of(cls, config: pytest.Config) -> XdistWorker | None:
        """This process's worker role, or None on the controller or without xdist."""
        workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
        return None if workerinput is None else cls(config, WorkerInput.from_dict(workerinput[KEY]))

    @property
    def workdir(self) -> Path:
        """This worker's own folder in the scratch space: it writes nothing into the output folder."""
        return self.scratch / self.id

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterator[None]:
        """Load tests run alone: they hold the run's suite lock exclusively, every other test shared."""
        with suite_lock(self.scratch / "suite.lock", exclusive=suite_of(item) == "load"):
            return (yield)

    def pytest_sessionfinish(self) -> None:
        run = self.config.stash[RUN_KEY]
        logs = {f"{p.stem}-{self.id}{p.suffix}": p.read_text(encoding="utf-8", errors="replace")
                for p in sorted(self.workdir.glob("*.log"))}
        self.config.workeroutput[KEY] = WorkerOutput(run.findings, logs).to_dict()  # type: ignore[attr-defined]
