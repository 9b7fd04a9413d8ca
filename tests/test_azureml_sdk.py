"""The plan against the real azure-ai-ml: its YAML loaders, and MLClient over HTTPS to the ARM stand-in."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from releasetest.azureml.mapping import Plan, plan_for
from releasetest.release.manifest import load_release

from .conftest import EXAMPLE

azure_ml = pytest.importorskip("azure.ai.ml", reason="the azureml extra is not installed")
standin = pytest.importorskip("tests.azure_standin", reason="trustme is not installed")

#: azure-ai-ml's schemas still use marshmallow's deprecated ``context``; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:The `context` parameter is deprecated:DeprecationWarning")


@pytest.fixture
def example(tmp_path: Path) -> Path:
    dest = tmp_path / "release"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("weather.csv", "__pycache__", "train.py"))
    return dest


def _plan(root: Path, stage: str) -> Plan:
    release = load_release(root / "release.toml")
    return plan_for(release, release.stage(stage))


def _load(plan: Plan) -> tuple[object, object]:
    """Endpoint and deployment through the SDK's own v2 YAML schema (paths from the release root)."""
    (plan.base_path / "endpoint.yml").write_text(yaml.safe_dump(plan.endpoint))
    (plan.base_path / "deployment.yml").write_text(yaml.safe_dump(plan.deployment))
    return (azure_ml.load_online_endpoint(plan.base_path / "endpoint.yml"),
            azure_ml.load_online_deployment(plan.base_path / "deployment.yml"))


def test_managed_plan_loads_in_the_sdk_schema(example: Path) -> None:
    endpoint, deployment = _load(_plan(example, "devtest"))
    assert type(endpoint).__name__ == "ManagedOnlineEndpoint" and endpoint.auth_mode == "key"  # type: ignore[attr-defined]
    assert type(deployment).__name__ == "ManagedOnlineDeployment"
    assert deployment.instance_type == "Standard_DS1_v2"  # type: ignore[attr-defined]
    assert deployment.request_settings.request_timeout_ms == 60_000  # type: ignore[attr-defined]
    assert deployment.code_configuration.scoring_script == "score.py"  # type: ignore[attr-defined]


def test_kubernetes_plan_loads_in_the_sdk_schema(example: Path) -> None:
    endpoint, deployment = _load(_plan(example, "production"))
    assert type(endpoint).__name__ == "KubernetesOnlineEndpoint"
    assert endpoint.compute == "aks-compute"  # type: ignore[attr-defined]
    assert type(deployment).__name__ == "KubernetesOnlineDeployment"
    scale = deployment.scale_settings  # type: ignore[attr-defined]
    assert (scale.min_instances, scale.max_instances, scale.target_utilization_percentage) == (1, 3, 70)
    assert deployment.resources.requests.cpu == "1"  # type: ignore[attr-defined]
    assert deployment.request_settings.max_queue_wait_ms == 1000  # type: ignore[attr-defined]


@pytest.fixture
def arm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[standin.AzureStandin]:  # type: ignore[name-defined]
    """The stand-in, trusted through REQUESTS_CA_BUNDLE; MLClient's process-wide cloud setting is restored."""
    with standin.AzureStandin() as server:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_bundle(str(tmp_path / "standin-ca.pem")))
        monkeypatch.setenv("AZUREML_CURRENT_CLOUD", "AzureCloud")
        yield server


def test_mlclient_reaches_the_standin_through_a_custom_cloud(example: Path, arm: standin.AzureStandin) -> None:  # type: ignore[name-defined]
    plan = _plan(example, "devtest")
    endpoint, _ = _load(plan)
    ml = azure_ml.MLClient(standin.StaticTokenCredential(), "sub-1", "rg-1", "ws-1", enable_telemetry=False,
                           **arm.cloud_kwargs)
    created = ml.online_endpoints.begin_create_or_update(endpoint).result()
    assert created.scoring_uri.startswith(arm.url)
    assert ml.online_endpoints.get_keys(plan.endpoint["name"]).primary_key == f"primary-{plan.endpoint['name']}"
    ml.online_endpoints.begin_delete(plan.endpoint["name"]).result()

    (put,) = arm.requests("PUT", r"/onlineEndpoints/")
    assert put.path.startswith("/subscriptions/sub-1/resourceGroups/rg-1/providers/"
                               "Microsoft.MachineLearningServices/workspaces/ws-1/onlineEndpoints/")
    assert put.body["properties"]["authMode"] == "Key"
    assert put.body["tags"]["release_id"] == plan.endpoint["tags"]["release_id"]
    assert len(arm.requests("GET", r"^/operations/")) >= 2  # create and delete were each polled to Succeeded
    assert arm.requests("POST", r"/listKeys$")
    assert arm.requests("DELETE", plan.endpoint["name"] + "$")
    assert plan.endpoint["name"] not in arm.state.endpoints
