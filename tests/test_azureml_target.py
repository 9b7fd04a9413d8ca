"""``pytest --release-target azureml`` end to end: the real azure-ai-ml against the loopback stand-in.

The run under test is a pytest subprocess; it reaches the stand-in only through the environment
(:meth:`AzureStandin.client_env`), like a CI job reaches Azure. When the stand-in provisions a
deployment it starts the real local endpoint (azmlinfsrv on 127.0.0.1) from the release, and the
suites run against it.
"""

from __future__ import annotations

import hashlib
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from releasetest.azureml.workspace import read_workspace_config, tree_digest
from releasetest.endpoint.local import LocalEndpoint
from releasetest.errors import DeployError
from releasetest.release.manifest import load_release

from .conftest import ReleaseProject, signal_while_busy

pytest.importorskip("azure.ai.ml", reason="the azureml extra is not installed")
standin = pytest.importorskip("tests.azure_standin", reason="trustme is not installed")
azureml_target = pytest.importorskip("releasetest.endpoint.azureml")

EP = "devtest-"  # endpoint names are devtest-<short id>


@pytest.fixture
def arm(release_project: ReleaseProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The stand-in, serving deployments with the real local endpoint; its env set for subprocesses."""
    yield from _standin(release_project, tmp_path, monkeypatch, route=False)


@pytest.fixture
def routed_arm(release_project: ReleaseProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """As ``arm``, with scoring through the stand-in's front end (which answers 429 beyond what the
    deployment admits)."""
    yield from _standin(release_project, tmp_path, monkeypatch, route=True)


def _standin(release_project: ReleaseProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             route: bool) -> Iterator[Any]:
    release_dir = release_project.release
    standin.in_workspace(release_dir)

    def serve(endpoint: str, body: dict[str, Any]) -> Any:
        release = load_release(release_dir / "release.toml")
        assert release.data is not None
        from releasetest.release.data import load_holdout

        golden = load_holdout(release.data).golden(release.data.golden_rows)
        # Azure ML v2 endpoints always have keys: the served endpoint enforces the one listKeys returns.
        local = LocalEndpoint(release, release.stage("devtest"), golden, log_path=tmp_path / f"serve-{endpoint}.log",
                              require_key=True, key=f"primary-{endpoint}")
        try:
            handle = local.deploy()
        except DeployError as exc:
            return standin.Served(None, exc.log_tail or exc.cause, local.teardown)
        return standin.Served(handle.scoring_uri, local.log_tail() or "", local.teardown)

    with standin.AzureStandin(serve=serve, route=route) as server:
        for key, value in server.client_env(tmp_path / "azure-env").items():
            monkeypatch.setenv(key, value)
        yield server


def _manifest_digest(release_project: ReleaseProject) -> str:
    release = load_release(release_project.release / "release.toml")
    plan = azureml_target.plan_for(release, release.stage("devtest"))
    return str(tree_digest(plan.deployment_model.files))


@pytest.mark.long
def test_devtest_on_azureml_promotes(release_project: ReleaseProject, arm: Any) -> None:
    result = release_project.run("--release-stage", "devtest", "--release-target", "azureml")
    assert result.ret == 0, result.stdout.str()[-3000:]
    verdict = release_project.verdict()
    assert verdict["decision"] == "PROMOTE"
    assert verdict["target"] == "azureml"
    name = verdict["endpoint"]["endpoint"]
    assert name.startswith(EP) and verdict["endpoint"]["deployment"] == "blue"

    # The model was registered from the pinned bytes, tagged with the manifest's tree digest.
    (model_put,) = arm.requests("PUT", r"/models/port-weather-models/versions/")
    assert model_put.body["properties"]["tags"]["releasetest_sha256"] == _manifest_digest(release_project)
    release = load_release(release_project.release / "release.toml")
    pinned = {f.path.name: f.sha256 for a in release.artifacts for f in a.files}
    uploaded = {path.rsplit("/", 1)[1]: hashlib.sha256(data).hexdigest()
                for path, (data, _) in arm.state.blobs.items() if "/port-weather-models/" in path}
    assert uploaded == pinned

    # The deployment carries the mapped v1 settings.
    (dep_put,) = arm.requests("PUT", rf"/onlineEndpoints/{name}/deployments/blue$")
    props = dep_put.body["properties"]
    assert props["instanceType"] == "Standard_DS1_v2" and dep_put.body["sku"]["capacity"] == 1
    plan = azureml_target.plan_for(release, release.stage("devtest"))
    env_version = plan.deployment["environment"]["version"]
    assert props["environmentId"].endswith(f"/environments/port-weather-env/versions/{env_version}")
    assert props["requestSettings"]["requestTimeout"] == "PT1M"
    assert props["model"].endswith(f"/models/port-weather-models/versions/{release.short_id}")
    assert props["codeConfiguration"]["scoringScript"] == "score.py"
    assert props["appInsightsEnabled"] is False
    (ep_put,) = arm.requests("PUT", rf"/onlineEndpoints/{name}$")
    assert ep_put.body["properties"]["authMode"] == "Key"
    assert ep_put.body["tags"]["release_id"] == release.release_id

    # Teardown deleted the endpoint, which stopped the server behind it.
    assert arm.requests("DELETE", rf"/onlineEndpoints/{name}$")
    assert not arm.state.endpoints and not arm.state.served
    progress = (release_project.root / "releasetest-out" / "azureml-devtest.log").read_text()
    assert f"model port-weather-models:{release.short_id} registered" in progress
    assert f"deleted endpoint {name}" in progress


@pytest.mark.long
def test_the_gates_clients_stay_within_what_the_deployment_admits(release_project: ReleaseProject,
                                                                  routed_arm: Any) -> None:
    """Azure (and the stand-in's front end) answers 429 beyond 2 x max_concurrent_requests_per_instance x
    instance_count scoring requests at once: 2 here (ACI maps to 1 instance; v2's default cap 1). Four
    acceptance threads on small batches and a second xdist worker share that many client slots, so the
    front end refuses nothing and never holds more than 2."""
    release_project.edit("release.toml", "batch_size = 500\nconcurrency = 2", "batch_size = 50\nconcurrency = 4")
    result = release_project.run("-n", "2", "--release-stage", "devtest", "--release-target", "azureml",
                                 "--release-require", "acceptance", "-m", "acceptance or smoke")
    verdict = release_project.verdict()
    assert verdict["decision"] == "PROMOTE", verdict["reasons"]
    endpoint = verdict["endpoint"]
    assert (endpoint["max_concurrent_requests_per_instance"], endpoint["instance_count"], endpoint["admits"]) \
        == (1, 1, 2)
    assert not Path(endpoint["client_slots"]).exists(), "teardown removes the client slots"
    deployment = (endpoint["endpoint"], "blue")
    assert routed_arm.state.refused == {}
    assert 1 <= routed_arm.state.peak[deployment] <= 2
    assert result.ret == 0


def test_registered_model_with_other_bytes_blocks_before_any_endpoint(release_project: ReleaseProject,
                                                                       arm: Any) -> None:
    release = load_release(release_project.release / "release.toml")
    arm.register_model("port-weather-models", release.short_id, {"releasetest_sha256": "0" * 64})
    result = release_project.run("--release-stage", "devtest", "--release-target", "azureml")
    assert result.ret == 1
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK"
    assert f"has sha256 tag {'0' * 64}, the manifest pins {_manifest_digest(release_project)}" in verdict["reasons"][0]
    assert not arm.requests("PUT", r"/onlineEndpoints/")
    assert not arm.requests("PUT", r"/models/")


def test_failed_deployment_attaches_inference_server_logs_and_deletes(release_project: ReleaseProject,
                                                                       arm: Any) -> None:
    release_project.edit("score.py", "def init():\n", "def init():\n    raise RuntimeError('model store offline')\n")
    result = release_project.run("--release-stage", "devtest", "--release-target", "azureml")
    assert result.ret == 1
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK"
    assert "deployment blue failed" in verdict["reasons"][0]
    assert "RuntimeError: model store offline" in verdict["deploy"]["log_tail"]
    (logs,) = arm.requests("POST", r"/deployments/blue/getLogs$")
    assert logs.body["containerType"] == "InferenceServer"
    assert arm.requests("DELETE", r"/onlineEndpoints/devtest-[^/]+$")
    assert not arm.state.endpoints


def test_sigint_during_the_suites_still_deletes_the_endpoint(release_project: ReleaseProject, arm: Any) -> None:
    returncode, output = signal_while_busy(release_project, signal.SIGINT, "--release-target", "azureml")
    assert returncode == pytest.ExitCode.INTERRUPTED, output
    assert release_project.verdict()["decision"] == "BLOCK"
    assert arm.requests("DELETE", r"/onlineEndpoints/devtest-[^/]+$"), output
    assert not arm.state.endpoints and not arm.state.served


def test_missing_workspace_config_is_a_configuration_error(release_project: ReleaseProject) -> None:
    """Exit 4 with one line and a BLOCK verdict before anything is collected, not one deploy error per test."""
    result = release_project.run_inprocess("--release-stage", "devtest", "--release-target", "azureml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    [line] = [ln for ln in result.stderr.lines if ln.startswith("ERROR:")]
    assert "aml_config/config.json: Azure ML workspace config not found" in line
    assert "--release-workspace-config" in line
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK" and verdict["suites"] == {}
    assert verdict["reasons"] == [f"configuration error: {line.removeprefix('ERROR: releasetest: ')}"]


def test_workspace_config_keys_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"subscription_id": "s", "resource_group": "rg"}))
    with pytest.raises(azureml_target.ConfigError, match=r"config.json: workspace_name: missing or empty"):
        read_workspace_config(path)
    path.write_text(json.dumps({"subscription_id": "s", "resource_group": "rg", "workspace": "ws"}))
    assert read_workspace_config(path)["workspace_name"] == "ws"


def test_handle_sends_the_deployment_header_and_survives_workerinput() -> None:
    from releasetest.endpoint.handle import EndpointHandle

    handle = EndpointHandle("azureml", "https://e/score", "https://e/", "https://e/swagger.json", key="secret-key-1",
                            extra_headers={"azureml-model-deployment": "blue"})
    assert handle.headers() == {"azureml-model-deployment": "blue", "Authorization": "Bearer secret-key-1"}
    assert EndpointHandle.from_dict(handle.to_dict()).headers() == handle.headers()
    assert "secret-key-1" not in json.dumps(handle.describe())
