"""The run's deploy lifecycle (:class:`releasetest.endpoint.deployment.Deployment`), in-process.

What is under test is the lifecycle object, not an endpoint: the endpoint here is a stand-in that
counts calls and fails on request. Deploying a real release is tested end to end (test_gate_run,
test_faults, test_concurrency).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from releasetest.endpoint.base import Endpoint
from releasetest.endpoint.deployment import Deployment, DeployState, DeployStateError
from releasetest.endpoint.handle import EndpointHandle
from releasetest.errors import DeployError
from releasetest.progress import Event
from releasetest.verdict.publish import Outputs
from releasetest.wiring.xdist import WorkerInput, WorkerOutput

HANDLE = EndpointHandle(target="fake", scoring_uri="http://127.0.0.1:1/score", liveness_uri="http://127.0.0.1:1/",
                        swagger_uri="http://127.0.0.1:1/swagger.json", info={"ready_s": 0.5})


class CountingEndpoint(Endpoint):
    """Counts lifecycle calls; ``deploy_fails`` / ``teardown_fails`` make those calls raise."""

    target = "fake"

    def __init__(self, deploy_fails: DeployError | None = None, teardown_fails: bool = False):
        self.calls: list[str] = []
        self.deploy_fails = deploy_fails
        self.teardown_fails = teardown_fails

    def start(self) -> None:
        self.calls.append("start")

    def deploy(self) -> EndpointHandle:
        self.calls.append("deploy")
        if self.deploy_fails is not None:
            raise self.deploy_fails
        return HANDLE

    def teardown(self) -> None:
        self.calls.append("teardown")
        if self.teardown_fails:
            raise RuntimeError("endpoint is locked")

    @property
    def handle(self) -> EndpointHandle | None:
        return HANDLE if "deploy" in self.calls else None

    def facts(self) -> dict[str, int]:
        return {"pid": 4242}

    def isolation_line(self) -> str:
        return "isolation: bwrap (...)"

    def notes(self) -> list[str]:
        return ["removed a killed run's work folder"]


def deployment(endpoint: CountingEndpoint, keep: bool = False) -> tuple[Deployment, list[EndpointHandle], list[str]]:
    """A deployment of ``endpoint`` with the handles its ready callback got and its progress lines."""
    ready: list[EndpointHandle] = []
    lines: list[str] = []

    def progress(event: Event) -> None:
        lines.append(event.text)

    return Deployment(lambda: endpoint, on_ready=ready.append, progress=progress, keep=keep), ready, lines


def test_start_then_wait_is_ready_and_tells_the_ready_callback_once() -> None:
    endpoint = CountingEndpoint()
    deploy, ready, lines = deployment(endpoint)
    assert deploy.state is DeployState.NOT_STARTED
    deploy.start()
    assert deploy.state is DeployState.STARTING and endpoint.calls == ["start"] and ready == []
    assert deploy.wait() is HANDLE
    assert deploy.wait() is HANDLE
    assert deploy.state is DeployState.READY
    assert ready == [HANDLE], "the ready callback is told exactly once"
    assert endpoint.calls == ["start", "deploy"], "a ready endpoint is not deployed again"
    assert [line for line in lines if line.startswith("endpoint ready in ")] == [lines[-1]]
    assert "cold start 0.5 s" in lines[-1]
    assert deploy.warnings == ["removed a killed run's work folder"]


def test_wait_without_start_starts_first() -> None:
    endpoint = CountingEndpoint()
    deploy, ready, _ = deployment(endpoint)
    assert deploy.wait() is HANDLE
    assert endpoint.calls == ["start", "deploy"] and ready == [HANDLE]


@pytest.mark.parametrize("before", ["start", "ready", "torn down"])
def test_a_second_start_is_refused(before: str) -> None:
    endpoint = CountingEndpoint()
    deploy, _, _ = deployment(endpoint)
    deploy.start()
    if before == "ready":
        deploy.wait()
    if before == "torn down":
        deploy.teardown()
    with pytest.raises(DeployStateError, match=r"start: the deployment is .*, not not started"):
        deploy.start()
    assert endpoint.calls.count("start") == 1


def test_wait_after_teardown_is_refused() -> None:
    deploy, ready, _ = deployment(CountingEndpoint())
    deploy.start()
    deploy.teardown()
    with pytest.raises(DeployStateError, match="wait: the deployment is torn down"):
        deploy.wait()
    assert ready == []


def test_a_failure_is_kept_and_re_raised_without_deploying_again() -> None:
    cause = DeployError("init() raised ValueError", "Traceback ...\nValueError: bad pickle")
    endpoint = CountingEndpoint(deploy_fails=cause)
    deploy, ready, lines = deployment(endpoint)
    for _ in range(3):
        with pytest.raises(DeployError) as raised:
            deploy.wait()
        assert raised.value is cause
    assert deploy.state is DeployState.FAILED and deploy.failure is cause
    assert endpoint.calls == ["start", "deploy"] and ready == []
    assert any(line.startswith("deploy failed after ") for line in lines)
    deploy.teardown()
    assert deploy.state is DeployState.TORN_DOWN
    record = deploy.record(server_log=True)
    assert record["ok"] is False and record["error"] == "init() raised ValueError"
    assert record["log_tail"] == cause.log_tail and record["left_behind"] == {"pid": 4242}
    assert record["isolation"] == "isolation: bwrap (...)", "a failed deploy keeps the sandbox it had"
    assert endpoint.calls == ["start", "deploy", "teardown"], "a failed launch is still stopped"


def test_a_build_failure_fails_the_deploy_with_nothing_left_behind() -> None:
    def build() -> Endpoint:
        raise DeployError("environment: myenv.yml: dependencies: scikit-learn differs")

    deploy = Deployment(build)
    deploy.start()
    assert deploy.state is DeployState.FAILED and deploy.endpoint is None
    with pytest.raises(DeployError, match="environment: myenv.yml"):
        deploy.wait()
    assert deploy.record(server_log=True)["left_behind"] == {}


def test_a_failing_ready_callback_fails_the_deploy_once() -> None:
    told: list[EndpointHandle] = []

    def on_ready(handle: EndpointHandle) -> None:
        told.append(handle)
        raise ConnectionError("dashboard unreachable")

    endpoint = CountingEndpoint()
    deploy = Deployment(lambda: endpoint, on_ready=on_ready)
    for _ in range(2):
        with pytest.raises(DeployError, match="the endpoint-ready hook failed: ConnectionError"):
            deploy.wait()
    assert told == [HANDLE] and deploy.state is DeployState.FAILED
    assert deploy.record(server_log=False)["ok"] is False
    deploy.teardown()
    assert endpoint.calls == ["start", "deploy", "teardown"]


def test_teardown_is_idempotent_and_keeps_the_outcome() -> None:
    endpoint = CountingEndpoint()
    deploy, _, _ = deployment(endpoint)
    deploy.wait()
    for _ in range(3):
        deploy.teardown()
    assert deploy.state is DeployState.TORN_DOWN
    assert endpoint.calls == ["start", "deploy", "teardown"]
    assert deploy.handle is HANDLE and deploy.record(server_log=False)["ok"] is True


def test_teardown_before_start_builds_nothing() -> None:
    def build() -> Endpoint:
        raise AssertionError("a teardown must not build the endpoint")

    deploy = Deployment(build)
    deploy.teardown()
    assert deploy.state is DeployState.TORN_DOWN


def test_a_failed_teardown_is_one_warning_not_an_error() -> None:
    endpoint = CountingEndpoint(teardown_fails=True)
    deploy, _, _ = deployment(endpoint)
    deploy.wait()
    deploy.teardown()
    deploy.teardown()
    assert deploy.state is DeployState.TORN_DOWN
    assert [w for w in deploy.warnings if w.startswith("endpoint teardown failed:")] == [
        "endpoint teardown failed: RuntimeError('endpoint is locked')"]
    assert endpoint.calls.count("teardown") == 1


def test_keep_leaves_the_endpoint_running() -> None:
    endpoint = CountingEndpoint()
    deploy, _, _ = deployment(endpoint, keep=True)
    deploy.wait()
    deploy.teardown()
    assert deploy.state is DeployState.TORN_DOWN and "teardown" not in endpoint.calls


@pytest.mark.parametrize("keep", [False, True])
def test_cancel_stops_an_early_launch_only(keep: bool) -> None:
    endpoint = CountingEndpoint()
    deploy, ready, lines = deployment(endpoint, keep=keep)
    assert deploy.cancel() is False, "nothing launched yet"
    deploy.start()
    assert deploy.cancel() is True
    assert deploy.state is DeployState.TORN_DOWN and endpoint.calls == ["start", "teardown"] and ready == []
    assert lines[-1] == "no selected test uses the endpoint: stopped it"
    assert deploy.record(server_log=True) == {"ok": False, "error": None, "answered": False, "log_tail": None,
                                              "seconds": None, "isolation": None, "left_behind": {}}
    ready_one = CountingEndpoint()
    deployed, _, _ = deployment(ready_one)
    deployed.wait()
    assert deployed.cancel() is False and deployed.state is DeployState.READY and "teardown" not in ready_one.calls


def test_deferred_work_runs_once_while_the_endpoint_starts() -> None:
    endpoint = CountingEndpoint()
    deploy, ready, _ = deployment(endpoint)
    seen: list[tuple[str, list[str]]] = []
    deploy.defer(lambda: seen.append((deploy.state.value, list(endpoint.calls))))
    deploy.start()
    assert seen == [], "not at start: the launch goes first"
    deploy.wait()
    deploy.wait()
    assert seen == [("starting", ["start"])], "once, after the launch and before waiting for readiness"
    handed = Deployment.handed_over(HANDLE, None)
    handed.defer(lambda: seen.append(("handed over", [])))
    handed.wait()
    assert len(seen) == 1, "a deployment that is ready already has no start-up to use"


def test_a_handed_over_deployment_owns_nothing() -> None:
    deploy = Deployment.handed_over(HANDLE, None)
    assert deploy.state is DeployState.READY and deploy.wait() is HANDLE
    deploy.teardown()
    assert deploy.state is DeployState.TORN_DOWN and deploy.record(server_log=False)["left_behind"] == {}
    with pytest.raises(ValueError):
        Deployment.handed_over(None, None)


def test_the_worker_hand_over_round_trips(tmp_path: Path) -> None:
    """What the controller puts in ``workerinput`` is plain data, and a worker rebuilds the same outcome."""
    ready = Deployment(CountingEndpoint)
    ready.wait()
    given = WorkerInput.from_dict(WorkerInput.of(ready, tmp_path).to_dict())
    assert given.scratch == str(tmp_path) and given.deployment().wait() == HANDLE

    failed = Deployment(lambda: CountingEndpoint(deploy_fails=DeployError("port in use", "log tail")))
    with pytest.raises(DeployError):
        failed.wait()
    worker_side = WorkerInput.from_dict(WorkerInput.of(failed, tmp_path).to_dict()).deployment()
    with pytest.raises(DeployError) as raised:
        worker_side.wait()
    assert (raised.value.cause, raised.value.log_tail) == ("port in use", "log tail")
    assert worker_side.state is DeployState.FAILED

    output = WorkerOutput({"schema": {"findings": [{"kind": "a"}]}}, {"server-devtest-champion-gw0.log": "x"})
    assert WorkerOutput.from_dict(output.to_dict()) == output


def test_a_partial_run_writes_beside_the_full_one(tmp_path: Path) -> None:
    full = Outputs(tmp_path / "verdict.json", tmp_path / "report.html", tmp_path / "history")
    assert full.path(full.verdict) == tmp_path / "verdict.json"
    partial = Outputs(full.verdict, full.report, full.history_dir, partial="-k smoke")
    assert partial.path(partial.report) == tmp_path / "report.partial.html"
    assert Outputs(full.verdict, full.report, full.history_dir, "-k smoke", partial_ok=True).path(
        full.verdict) == full.verdict
