"""The run's deploy as one object with explicit states, in the manner of pytest-django's ``LiveServer``.

An :class:`~releasetest.endpoint.base.Endpoint` knows how to bring one target up and down; a
:class:`Deployment` decides *when*, for a whole run: it launches early (so a cold start overlaps
pytest's collection), does the work deferred to the start-up while it waits, waits for readiness
once, tells its ready callback once, keeps a failure to re-raise to every later caller, and tears
down once. The pytest wiring only calls it.

States and the calls that move between them (``wait`` from NOT_STARTED starts first)::

    NOT_STARTED --start--> STARTING --wait--> READY or FAILED
                           STARTING --cancel--> TORN_DOWN
                        (every state) --teardown--> TORN_DOWN
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from typing import Any

from releasetest.endpoint.base import Endpoint
from releasetest.endpoint.handle import EndpointHandle
from releasetest.errors import DeployError
from releasetest.progress import Event, Progress, silent

#: Told once, in the process that deployed, when the endpoint answered its golden prediction.
ReadyCallback = Callable[[EndpointHandle], None]


class DeployState(enum.Enum):
    NOT_STARTED = "not started"
    STARTING = "starting"
    READY = "ready"
    FAILED = "failed"
    TORN_DOWN = "torn down"


class DeployStateError(RuntimeError):
    """A call the deployment's current state does not allow (a bug in the caller, not in the release)."""


class Deployment:
    """One endpoint's lifecycle over a run: start, wait (with the ready callback), teardown.

    ``build`` returns the endpoint, not yet started; it may raise
    :class:`~releasetest.errors.DeployError`, which fails the deployment like a failed start.
    With ``keep`` the endpoint outlives the run (``--release-keep``): teardown leaves it running.
    """

    def __init__(self, build: Callable[[], Endpoint] | None, on_ready: ReadyCallback | None = None,
                 progress: Progress = silent, keep: bool = False):
        self._build = build
        self._on_ready = on_ready
        self.progress = progress
        self.keep = keep
        self._state = DeployState.NOT_STARTED
        self.endpoint: Endpoint | None = None
        #: The ready endpoint; kept after teardown, for the verdict.
        self.handle: EndpointHandle | None = None
        #: Why it failed; kept after teardown, re-raised by :meth:`wait`.
        self.failure: DeployError | None = None
        #: From the launch to ready or failed.
        self.seconds: float | None = None
        #: What the deploy found and fixed, and a failed teardown: the verdict's warnings.
        self.warnings: list[str] = []
        self._began = 0.0
        self._deferred: list[Callable[[], None]] = []

    @classmethod
    def handed_over(cls, handle: EndpointHandle | None, failure: DeployError | None) -> Deployment:
        """What another process deployed (the xdist controller, for a worker): ready or failed,
        with no endpoint of this process's own to stop and no ready callback to tell."""
        if (handle is None) == (failure is None):
            raise ValueError("a handed-over deployment is either ready (a handle) or failed (a failure)")
        deployment = cls(build=None)
        deployment.handle, deployment.failure = handle, failure
        deployment._state = DeployState.READY if handle is not None else DeployState.FAILED
        return deployment

    @property
    def state(self) -> DeployState:
        return self._state

    def start(self) -> None:
        """Launch without waiting for readiness; a failure is kept for :meth:`wait` to raise."""
        self._require(DeployState.NOT_STARTED, "start")
        assert self._build is not None
        self._began = time.monotonic()
        try:
            self.endpoint = self._build()
            self._state = DeployState.STARTING
            self.endpoint.start()
        except DeployError as exc:
            self._failed(exc)

    def defer(self, work: Callable[[], None]) -> None:
        """Work that needs no endpoint, done by the first :meth:`wait` while the endpoint is still
        starting (the cold start is spent waiting anyway); dropped if it never is."""
        self._deferred.append(work)

    def wait(self) -> EndpointHandle:
        """The ready endpoint, deploying it first if needed; every later call returns the same
        handle, or raises the same failure. The ready callback is told once, on the way to READY;
        if it raises, the deployment fails with that cause."""
        if self.state is DeployState.NOT_STARTED:
            self.start()
        if self.state is DeployState.STARTING:
            assert self.endpoint is not None
            deferred, self._deferred = self._deferred, []
            for work in deferred:
                work()
            try:
                handle = self.endpoint.deploy()
            except DeployError as exc:
                self._failed(exc)
            else:
                self._ready(handle)
        if self.state is DeployState.READY:
            assert self.handle is not None
            return self.handle
        if self.state is DeployState.FAILED:
            assert self.failure is not None
            raise self.failure.with_traceback(None)  # the same failure, without the earlier callers' frames
        raise DeployStateError(f"wait: the deployment is {self.state.value}")

    def cancel(self) -> bool:
        """Stop an early launch that no selected test turned out to need (also under ``keep``);
        True when there was one. A deployment that is ready, failed or not started is left as is."""
        if self.state is not DeployState.STARTING:
            return False
        self._stop()
        self.endpoint = None  # nothing was deployed: the verdict records no endpoint
        self._state = DeployState.TORN_DOWN
        self.progress(Event("no selected test uses the endpoint: stopped it"))
        return True

    def teardown(self) -> None:
        """Stop the endpoint unless it is kept; safe from any state, any number of times. A failure
        becomes a warning, so it can neither hide the verdict nor turn into a test error."""
        if self.state is DeployState.TORN_DOWN:
            return
        if not self.keep:
            self._stop()
        self._state = DeployState.TORN_DOWN

    def record(self, server_log: bool) -> dict[str, Any]:
        """The verdict's ``deploy`` section; ``server_log`` adds the server's log tail to a deploy
        that succeeded (the server's side of a failing test). ``answered``: the server was up but
        answered the readiness check wrongly."""
        log_tail = self.failure.log_tail if self.failure is not None else None
        if log_tail is None and server_log and self.handle is not None:
            log_tail = self.handle.log_tail()
        return {"ok": self.handle is not None and self.failure is None,
                "error": self.failure.cause if self.failure is not None else None,
                "answered": self.failure.answered if self.failure is not None else False,
                "log_tail": log_tail, "seconds": self.seconds,
                "isolation": self.endpoint.isolation_line() if self.endpoint is not None else None,
                "left_behind": self.endpoint.facts() if self.endpoint is not None else {}}

    def _require(self, state: DeployState, action: str) -> None:
        if self.state is not state:
            raise DeployStateError(f"{action}: the deployment is {self.state.value}, not {state.value}")

    def _ready(self, handle: EndpointHandle) -> None:
        self.handle = handle
        self._ended()
        self._state = DeployState.READY
        cold = handle.info.get("ready_s")
        self.progress(Event(f"endpoint ready in {self.seconds:.1f} s"
                            + (f" (cold start {cold:.1f} s: server start to first golden prediction)"
                               if cold is not None else "") + f": {handle.scoring_uri}"))
        if self._on_ready is not None:
            try:
                self._on_ready(handle)
            except Exception as exc:  # noqa: BLE001 - a broken hook fails the deploy, once, for every test
                self.failure = DeployError(f"the endpoint-ready hook failed: {exc!r}")
                self._state = DeployState.FAILED

    def _failed(self, exc: DeployError) -> None:
        self.failure = exc
        self._ended()
        self._state = DeployState.FAILED
        if exc.answered:
            self.progress(Event(f"the endpoint is up after {self.seconds:.1f} s, but not ready: "
                                f"{exc.cause.split(':')[0]} (details in the releasetest gate section)"))
        else:
            self.progress(Event(f"deploy failed after {self.seconds:.1f} s "
                                "(cause and server log in the releasetest gate section)"))

    def _ended(self) -> None:
        self.seconds = round(time.monotonic() - self._began, 2)
        if self.endpoint is not None:
            self.warnings.extend(self.endpoint.notes())

    def _stop(self) -> None:
        if self.endpoint is None:
            return
        try:
            self.endpoint.teardown()
        except Exception as exc:  # noqa: BLE001 - whatever the target raised, the verdict is still due
            self.warnings.append(f"endpoint teardown failed: {exc!r}")
