"""``releasetest promote --target azureml``: blue/green into the production endpoint.

``promote`` runs as a CI step would, in a subprocess with the real azure-ai-ml ``MLClient``
(``DefaultAzureCredential``) that reaches the loopback ARM stand-in through the environment only
(in-process, the SDK would reuse a custom cloud another test registered, with its old address):
one child per test (``promote_steps``) runs that test's promotions one after another, so
azure-ai-ml is imported once per test, not once per step. The stand-in routes the
endpoint's scoring URI like the Azure ML front end (``route=True``): by the
``azureml-model-deployment`` header, else by the traffic split; each deployment is the real local
endpoint (azmlinfsrv) started from the release files. Devtest verdicts come from whole gates that
require the smoke suite only, run in this process against the recorded answers (what is tested
here is promotion; the stand-in's deployments are the release's own server).
"""

from __future__ import annotations

import json
import re
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from releasetest.cli import main
from releasetest.endpoint.local import LocalEndpoint
from releasetest.errors import DeployError
from releasetest.release.manifest import load_release

from .conftest import SMOKE_GATE, ReleaseProject
from .recorded_target import RecordedTarget

pytest.importorskip("azure.ai.ml", reason="the azureml extra is not installed")
standin = pytest.importorskip("tests.azure_standin", reason="trustme is not installed")

EP = "port-weather-production"
BROKEN = "RuntimeError: production secret store unreachable"


@pytest.fixture
def arm(release_project: ReleaseProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The routing stand-in; ``arm.broken`` names release ids whose server fails to start on the cluster."""
    release_dir = release_project.release
    standin.in_workspace(release_dir)
    broken: set[str] = set()

    def serve(endpoint: str, body: dict[str, Any]) -> Any:
        source = release_dir
        if body.get("tags", {}).get("release_id") in broken:
            # A production-only failure (the cluster's secret store is down): the real server log says so.
            source = tmp_path / "broken-release"
            shutil.copytree(release_dir, source, dirs_exist_ok=True)
            script = source / "score.py"
            script.write_text(script.read_text().replace(
                "def init():\n", "def init():\n    raise RuntimeError('production secret store unreachable')\n", 1))
        release = load_release(source / "release.toml")
        assert release.data is not None
        from releasetest.release.data import load_holdout

        golden = load_holdout(release.data).golden(release.data.golden_rows)
        local = LocalEndpoint(release, release.stage("devtest"), golden, require_key=True, key=f"primary-{endpoint}",
                              log_path=tmp_path / f"serve-{endpoint}-{len(arm_server.state.served)}.log")
        try:
            handle = local.deploy()
        except DeployError as exc:
            return standin.Served(None, exc.log_tail or exc.cause, local.teardown)
        return standin.Served(handle.scoring_uri, local.log_tail() or "", local.teardown)

    with standin.AzureStandin(serve=serve, route=True) as arm_server:
        for key, value in arm_server.client_env(tmp_path / "azure-env").items():
            monkeypatch.setenv(key, value)
        arm_server.broken = broken
        yield arm_server


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


#: The child of :class:`CliSteps`: each line on stdin is one command's argv for ``releasetest``'s
#: main(); its fds 1 and 2 go to files for the command (print, logging handlers bound to a stream,
#: the SDK's progress bars: all of it is that command's output, as in a process of its own), and
#: [exit code, stdout, stderr] goes back as one line on a copy of the original stdout.
_STEPS = """
import json, os, sys, tempfile, traceback
from releasetest.cli import main

answers = os.fdopen(os.dup(1), "w")
for line in sys.stdin:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush(); sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(out.fileno(), 1); os.dup2(err.fileno(), 2)
        try:
            code = main(json.loads(line))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush(); sys.stderr.flush()
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd); os.close(copy)
        texts = []
        for f in (out, err):
            f.seek(0)
            texts.append(f.read().decode(errors="replace"))
        answers.write(json.dumps([code, *texts]) + "\\n")
        answers.flush()
"""


class CliSteps:
    """``releasetest`` commands of one test run one after another in one child interpreter (see
    :data:`_STEPS`), started with this process's environment (the stand-in's, once ``arm`` set it)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _STEPS], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)

    def __call__(self, *args: str, timeout_s: float = 180) -> tuple[int, str, str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(args) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        assert ready, f"releasetest {' '.join(args)} did not finish within {timeout_s} s"
        line = self.proc.stdout.readline()
        assert line, f"the steps' interpreter ended (exit {self.proc.wait(timeout=10)}) during releasetest {args}"
        code, out, err = json.loads(line)
        return code, out, err

    def close(self) -> None:
        """End the child (its stdin closed) and close both pipes: an unclosed one, collected during
        a later in-process gate, is an unraisable ResourceWarning that fails that gate's test."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()


@pytest.fixture
def promote_steps(arm: Any) -> Iterator[CliSteps]:
    """The test's promotions in one child (azure-ai-ml imported once), which reaches the stand-in
    through the environment ``arm`` set."""
    steps = CliSteps()
    try:
        yield steps
    finally:
        steps.close()


def _approved_verdict(release_project: ReleaseProject, capsys: pytest.CaptureFixture[str], store: str,
                      name: str, recorded: RecordedTarget) -> tuple[str, str]:
    """A devtest gate of the release as it is now, approved; (verdict path, deployment name). The
    gate runs in this process against the recorded answers: what is tested here is promotion, and
    the stand-in's deployments are the release's own azmlinfsrv."""
    result = release_project.run_inprocess(*SMOKE_GATE, *recorded.args)
    assert result.ret == 0, result.stdout.str()[-2000:]
    path = release_project.root / f"verdict-{name}.json"
    shutil.copyfile(release_project.verdict_path, path)
    code, _, err = _cli(capsys, "approve", str(path), "--by", "alice", "--store", store)
    assert code == 0, err
    return str(path), f"r-{load_release(release_project.release / 'release.toml').short_id}"


def _index(arm: Any, method: str, pattern: str, header: str | None = None) -> list[int]:
    """Positions of matching requests in the stand-in's log (to assert on their order)."""
    return [i for i, r in enumerate(arm.state.requests) if r.method == method and re.search(pattern, r.path)
            and (header is None or r.headers.get("azureml-model-deployment") == header)]


@pytest.mark.long
def test_blue_green_promotions_keep_the_endpoint_and_the_old_deployment(
        release_project: ReleaseProject, arm: Any, capsys: pytest.CaptureFixture[str],
        recorded: RecordedTarget, promote_steps: CliSteps) -> None:
    store = str(release_project.root / "history")
    promote = ("promote", "--from", "devtest", "--to", "production", "--target", "azureml", "--store", store)

    # (1) First promotion: the production endpoint is created (Kubernetes, from the AKS config) and kept.
    first, dep1 = _approved_verdict(release_project, capsys, store, "first", recorded)
    code, out, err = promote_steps(*promote, "--verdict", first, "--by", "ci")
    assert code == 0, err
    assert "(azureml, AksDeploymentConfig.yml)" in out and f"traffic {{'{dep1}': 100}}" in out
    (ep_create,) = [r for r in arm.requests("PUT", rf"/onlineEndpoints/{EP}$") if "traffic" not in r.body["properties"]
                    or not r.body["properties"]["traffic"]]
    assert ep_create.body["properties"]["compute"].endswith("/computes/aks-compute")
    (dep_put,) = arm.requests("PUT", rf"/onlineEndpoints/{EP}/deployments/{dep1}$")
    props = dep_put.body["properties"]
    assert props["endpointComputeType"] == "Kubernetes"
    assert props["requestSettings"]["requestTimeout"] == "PT1S", "production's scoringTimeoutMs 1000"
    assert dep_put.body["tags"]["release_id"] == json.loads(Path(first).read_text())["release"]["id"]
    checked = _index(arm, "POST", rf"^/endpoints/{EP}/score$", header=dep1)
    (shift,) = _index(arm, "PUT", rf"/onlineEndpoints/{EP}$")[1:]
    assert checked and max(checked) < shift, "the golden rows answered before any traffic moved"
    assert arm.state.requests[shift].body["properties"]["traffic"] == {dep1: 100}
    [record] = [json.loads(p.read_text()) for p in Path(store, "promotions").glob("*.json")]
    assert record["target"] == "azureml" and record["endpoint"]["deployment"] == dep1
    assert record["endpoint"]["traffic"] == {dep1: 100} and record["endpoint"]["created_endpoint"] is True

    # (2) Another release: a second deployment at 0 %, checked pinned, then all traffic; the old one stays.
    release_project.edit("score.py", "def init():\n", "# release 2\ndef init():\n")
    second, dep2 = _approved_verdict(release_project, capsys, store, "second", recorded)
    assert dep2 != dep1
    start = len(arm.state.requests)
    code, out, err = promote_steps(*promote, "--verdict", second)
    assert code == 0, err
    assert f'roll back with: az ml online-endpoint update --name {EP} --traffic "{dep1}=100 {dep2}=0"' in out
    new = arm.state.requests[start:]
    assert not [r for r in new if r.method == "PUT" and r.path.endswith(f"/deployments/{dep1}")]
    checked = [i for i, r in enumerate(new) if r.path == f"/endpoints/{EP}/score"
               and r.headers.get("azureml-model-deployment") == dep2]
    shifts = [i for i, r in enumerate(new) if r.method == "PUT" and r.path.endswith(f"/onlineEndpoints/{EP}")]
    assert len(shifts) == 1 and checked and max(checked) < shifts[0]
    assert new[shifts[0]].body["properties"]["traffic"] == {dep2: 100}
    unpinned = [i for i, r in enumerate(new) if r.path == f"/endpoints/{EP}/score"
                and "azureml-model-deployment" not in r.headers]
    assert unpinned and min(unpinned) > shifts[0], "after the shift the endpoint was checked as clients reach it"
    assert arm.state.endpoints[EP]["properties"]["traffic"] == {dep2: 100}
    assert {(EP, dep1), (EP, dep2)} <= set(arm.state.served), "the old deployment is kept for rollback"
    assert not arm.requests("DELETE")

    # (3) A release whose server does not start on the cluster: traffic stays on dep2, the logs are shown.
    release_project.edit("score.py", "# release 2\n", "# release 3\n")
    third, dep3 = _approved_verdict(release_project, capsys, store, "third", recorded)
    arm.broken.add(load_release(release_project.release / "release.toml").release_id)
    start = len(arm.state.requests)
    code, out, err = promote_steps(*promote, "--verdict", third)
    assert code == 2
    assert f"promotion to production failed, traffic stays where it was: Azure ML endpoint {EP}" in err
    assert f"deployment {dep3} failed" in err and BROKEN in err
    new = arm.state.requests[start:]
    (logs,) = [r for r in new if r.path.endswith(f"/deployments/{dep3}/getLogs")]
    assert logs.body["containerType"] == "InferenceServer"
    assert not [r for r in new if r.method == "PUT" and r.path.endswith(f"/onlineEndpoints/{EP}")]
    assert [r for r in new if r.method == "DELETE" and r.path.endswith(f"/deployments/{dep3}")]
    assert arm.state.endpoints[EP]["properties"]["traffic"] == {dep2: 100}
    assert set(arm.state.served) == {(EP, dep1), (EP, dep2)}
    assert len(list(Path(store, "promotions").glob("*.json"))) == 2
