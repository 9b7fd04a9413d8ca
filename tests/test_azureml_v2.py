"""A v2 release's own YAML through ``azureml-plan``, ``--release-target azureml`` and ``promote --target
azureml``: the real azure-ai-ml against the loopback ARM stand-in, each deployment served by the
real local endpoint (azmlinfsrv) started from the release files."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from releasetest.cli import main
from releasetest.endpoint.local import LocalEndpoint
from releasetest.errors import DeployError
from releasetest.release.manifest import load_release

from .conftest import INI, SMOKE_GATE
from .test_v2_release import SAMPLE, copy

pytest.importorskip("azure.ai.ml", reason="the azureml extra is not installed")
standin = pytest.importorskip("tests.azure_standin", reason="trustme is not installed")
mapping = pytest.importorskip("releasetest.azureml.mapping")

@pytest.fixture
def v2_release(pytester: pytest.Pytester) -> Path:
    release = copy(SAMPLE, pytester.path)
    pytester.makeini(INI)
    (release / "aml_config").mkdir()
    (release / "aml_config" / "config.json").write_text(json.dumps(standin.WORKSPACE_CONFIG))
    return release


@pytest.fixture
def arm(v2_release: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[bool], Any]]:
    """Opens the stand-in (``route``: the scoring URI routes like Azure's front end, for blue/green);
    a deployment is the local endpoint of the release's devtest stage. Closed at the end."""
    stack = ExitStack()

    def open_standin(route: bool) -> Any:
        def serve(endpoint: str, body: dict[str, Any]) -> Any:
            release = load_release(v2_release / "release.toml")
            assert release.data is not None
            from releasetest.release.data import load_holdout

            golden = load_holdout(release.data).golden(release.data.golden_rows)
            local = LocalEndpoint(release, release.stage("devtest"), golden, require_key=True,
                                  key=f"primary-{endpoint}",
                                  log_path=tmp_path / f"serve-{endpoint}-{len(server.state.served)}.log")
            try:
                handle = local.deploy()
            except DeployError as exc:
                return standin.Served(None, exc.log_tail or exc.cause, local.teardown)
            return standin.Served(handle.scoring_uri, local.log_tail() or "", local.teardown)

        server = stack.enter_context(standin.AzureStandin(serve=serve, route=route))
        for key, value in server.client_env(tmp_path / f"azure-env-{route}").items():
            monkeypatch.setenv(key, value)
        return server

    with stack:
        yield open_standin


def test_the_plan_of_a_v2_release_is_its_own_yaml_with_the_gates_names(v2_release: Path, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    release = load_release(v2_release / "release.toml")
    plan = mapping.plan_for(release, release.stage("devtest"))
    assert plan.endpoint["name"] == f"devtest-{release.short_id}" and plan.deployment["name"] == "blue"
    assert plan.deployment["endpoint_name"] == plan.endpoint["name"]
    assert plan.deployment["instance_type"] == "Standard_DS3_v2", "the YAML's own setting, not a mapped one"
    assert plan.deployment["code_configuration"] == {"code": "onlinescoring", "scoring_script": "score.py"}
    assert plan.deployment["request_settings"] == {"request_timeout_ms": 5000,
                                                   "max_concurrent_requests_per_instance": 1}
    assert plan.endpoint["tags"]["release_id"] == release.release_id
    promoted = mapping.plan_for(release, release.stage("production"), "promote")
    assert (promoted.endpoint["name"], promoted.deployment["name"]) == \
        ("v2-managed-sample-production", f"r-{release.short_id}")
    assert main(["azureml-plan", str(v2_release / "release.toml"), "--stage", "devtest",
                 "--out", str(tmp_path / "plan")]) == 0
    capsys.readouterr()
    model_doc = (tmp_path / "plan" / "model.yml").read_text()
    assert "path: model/model" in model_doc, model_doc
    assert (tmp_path / "plan" / "model" / "model" / "sklearn_regression_model.pkl").is_file(), \
        "a v2 folder model keeps its folder name, as AZUREML_MODEL_DIR/model/... on Azure"


@pytest.mark.long
def test_a_v2_release_gates_and_promotes_on_azureml_from_its_own_yaml(
        pytester: pytest.Pytester, v2_release: Path, arm: Callable[[bool], Any]) -> None:
    release = load_release(v2_release / "release.toml")
    gate = arm(False)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *SMOKE_GATE, "--release-target", "azureml",
                                           timeout=400)
    assert result.ret == 0, result.stdout.str()[-3000:]
    verdict_path = pytester.path / "releasetest-out" / "verdict.json"
    verdict = json.loads(verdict_path.read_text())
    assert verdict["decision"] == "PROMOTE" and verdict["target"] == "azureml"
    gate_ep = f"devtest-{release.short_id}"
    assert verdict["endpoint"]["endpoint"] == gate_ep and verdict["endpoint"]["deployment"] == "blue"
    (dep_put,) = gate.requests("PUT", rf"/onlineEndpoints/{gate_ep}/deployments/blue$")
    props = dep_put.body["properties"]
    assert props["instanceType"] == "Standard_DS3_v2" and props["requestSettings"]["requestTimeout"] == "PT5S"
    assert props["codeConfiguration"]["scoringScript"] == "score.py"
    model = mapping.plan_for(release, release.stage("devtest")).deployment_model
    assert props["model"].endswith(f"/models/{model.name}/versions/{model.version}")
    uploaded = [p for p in gate.state.blobs if f"/{model.name}/" in p or p.endswith("sklearn_regression_model.pkl")]
    assert any(p.endswith("model/sklearn_regression_model.pkl") for p in uploaded), uploaded
    assert gate.requests("DELETE", rf"/onlineEndpoints/{gate_ep}$")

    production = arm(True)

    store = str(pytester.path / "history")
    assert main(["approve", str(verdict_path), "--by", "alice", "--store", store]) == 0
    proc = subprocess.run([sys.executable, "-m", "releasetest.cli", "promote", "--from", "devtest", "--to",
                           "production", "--target", "azureml", "--store", store, "--verdict", str(verdict_path),
                           "--by", "ci"],
                          capture_output=True, text=True, timeout=300, cwd=pytester.path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dep = f"r-{release.short_id}"
    assert f"traffic {{'{dep}': 100}}" in proc.stdout, proc.stdout
    (prod_put,) = production.requests("PUT", rf"/onlineEndpoints/v2-managed-sample-production/deployments/{dep}$")
    assert prod_put.body["properties"]["instanceType"] == "Standard_DS3_v2"
