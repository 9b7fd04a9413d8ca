"""The v1 -> v2 mapping (pure, no azure-ai-ml) and the ``releasetest azureml-plan`` command."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from releasetest.azureml.mapping import Plan, endpoint_name, pick_sku, plan_for
from releasetest.cli import main
from releasetest.errors import ConfigError
from releasetest.release.manifest import load_release

from .conftest import EXAMPLE


@pytest.fixture
def example(tmp_path: Path) -> Path:
    dest = tmp_path / "release"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("weather.csv", "__pycache__", "train.py"))
    return dest


def _plan(root: Path, stage: str, config: str | None = None) -> Plan:
    if config is not None:
        (root / f"{stage}.yml").write_text(config)
        manifest = root / "release.toml"
        text = manifest.read_text()
        old = "AciDeploymentConfig.yml" if stage == "devtest" else "AksDeploymentConfig.yml"
        manifest.write_text(text.replace(f'deployment_config = "{old}"', f'deployment_config = "{stage}.yml"', 1))
    release = load_release(root / "release.toml")
    return plan_for(release, release.stage(stage))


def _drift(plan: Plan) -> dict[str, str]:
    return {d.key: d.message for d in plan.drift}


def test_aci_stage_maps_to_managed_endpoint_with_key_auth_and_v1_timeout(example: Path) -> None:
    plan = _plan(example, "devtest")
    release = load_release(example / "release.toml")
    assert plan.kind == "managed"
    assert plan.endpoint["name"] == f"devtest-{release.short_id}"
    assert plan.endpoint["auth_mode"] == "key"
    assert plan.endpoint["tags"]["release_id"] == release.release_id
    dep = plan.deployment
    assert dep["endpoint_name"] == plan.endpoint["name"]
    assert dep["instance_type"] == "Standard_DS1_v2" and dep["instance_count"] == 1
    assert dep["request_settings"] == {"request_timeout_ms": 60_000}
    assert dep["code_configuration"] == {"code": ".", "scoring_script": "score.py"}
    assert dep["environment"]["conda_file"] == "myenv.yml"
    assert dep["app_insights_enabled"] is False
    drift = _drift(plan)
    assert "no unauthenticated endpoints" in drift["authEnabled"]
    assert "always HTTPS" in drift["sslEnabled"]
    assert "v2 would default to 5000 ms" in drift["scoringTimeoutMs"]
    assert "Standard_DS1_v2" in drift["containerResourceRequirements"]


def test_several_artifacts_are_bundled_in_the_v1_layout(example: Path) -> None:
    plan = _plan(example, "devtest")
    release = load_release(example / "release.toml")
    assert [m.ref for m in plan.models] == ["azureml:model-scaler:1", "azureml:support-vector-classifier:1"]
    bundle = plan.deployment_model
    assert plan.deployment["model"] == bundle.ref == f"azureml:port-weather-models:{release.short_id}"
    assert [rel for rel, _, _ in bundle.files] == ["model-scaler/1/model-scaler.pkl",
                                                  "support-vector-classifier/1/support-vector-classifier.onnx"]
    assert bundle.files[0][2] == release.artifacts[0].files[0].sha256
    assert "mounts one model" in _drift(plan)["models"]


def test_aks_stage_maps_to_kubernetes_with_resources_autoscale_and_queue_wait(example: Path) -> None:
    plan = _plan(example, "production")
    assert plan.kind == "kubernetes"
    assert plan.endpoint["compute"] == "azureml:aks-compute"
    dep = plan.deployment
    assert dep["resources"] == {"requests": {"cpu": "1", "memory": "1Gi"}}
    assert dep["scale_settings"] == {"type": "target_utilization", "min_instances": 1, "max_instances": 3,
                                     "polling_interval": 10, "target_utilization_percentage": 70}
    assert dep["request_settings"] == {"request_timeout_ms": 1000, "max_concurrent_requests_per_instance": 2,
                                       "max_queue_wait_ms": 1000}
    assert dep["environment_variables"] == {"WORKER_COUNT": "2"}
    assert dep["app_insights_enabled"] is True
    drift = _drift(plan)
    assert "authEnabled" not in drift and "scoringTimeoutMs" not in drift
    assert {"computeTargetName", "sslEnabled", "maxQueueWaitMs", "maxConcurrentRequestsPerContainer"} <= set(drift)


def test_managed_drops_queue_wait_clamps_timeout_and_notes_autoscaler(example: Path) -> None:
    plan = _plan(example, "devtest", (
        "computeType: ACI\ncontainerResourceRequirements:\n  cpu: 3\n  memoryInGB: 10\n"
        "authEnabled: True\nsslEnabled: True\nscoringTimeoutMs: 300000\nmaxQueueWaitMs: 500\n"
        "autoScaler:\n  autoscaleEnabled: True\n  minReplicas: 2\n  maxReplicas: 4\n"
        "livenessProbeRequirements:\n  periodSeconds: 5\n  failureThreshold: 3\n"
        "dnsNameLabel: myapp\nenvironmentVariables:\n  FOO: 1\n"))
    dep = plan.deployment
    assert dep["instance_type"] == "Standard_DS3_v2"
    assert dep["instance_count"] == 2
    assert dep["request_settings"] == {"request_timeout_ms": 180_000}
    assert dep["liveness_probe"] == {"period": 5, "failure_threshold": 3}
    assert dep["environment_variables"] == {"FOO": "1"}
    assert "scale_settings" not in dep
    drift = _drift(plan)
    assert "clamped" in drift["scoringTimeoutMs"]
    assert "deprecated for managed endpoints" in drift["maxQueueWaitMs"]
    assert "Azure Monitor autoscale" in drift["autoScaler"]
    assert "inference.ml.azure.com" in drift["dnsNameLabel"]
    assert "authEnabled" not in drift and "sslEnabled" not in drift


def test_token_auth_maps_to_aml_token(example: Path) -> None:
    plan = _plan(example, "devtest", "computeType: ACI\ntokenAuthEnabled: True\n")
    assert plan.endpoint["auth_mode"] == "aml_token"


def test_conda_file_without_inference_server_is_drift(example: Path) -> None:
    conda = example / "myenv.yml"
    conda.write_text(conda.read_text().replace("      - azureml-inference-server-http==1.5.1\n", ""))
    assert "azureml-inference-server-http" in _drift(_plan(example, "devtest"))["condaFile"]


@pytest.mark.parametrize(("config", "key", "fix"), [
    ("computeType: AMLCOMPUTE\n", "computeType", "use ACI"),
    ("computeType: ACI\ncontainerResourceRequirements:\n  cpu: 64\n", "containerResourceRequirements",
     "deploy to Kubernetes"),
])
def test_unmappable_config_names_file_key_and_fix(example: Path, config: str, key: str, fix: str) -> None:
    with pytest.raises(ConfigError) as exc:
        _plan(example, "devtest", config)
    assert exc.value.key == key and exc.value.file is not None and exc.value.file.endswith("devtest.yml")
    assert fix in str(exc.value)


def test_sku_and_endpoint_name_rules() -> None:
    assert pick_sku(0.1, 0.5, 0) == "Standard_DS1_v2"
    assert pick_sku(2, 8, 0) == "Standard_DS3_v2"
    assert pick_sku(1, 1, 1) == "Standard_NC6s_v3"
    assert pick_sku(32, 1, 0) is None
    name = endpoint_name("Dev_Test.EU", "0123456789abcdef")
    assert name == "dev-test-eu-0123456789ab"
    long = endpoint_name("x" * 50, "0123456789ab")
    assert len(long) <= 32 and re.fullmatch(r"[a-z][a-z0-9-]{2,31}", long)
    assert endpoint_name("1st", "0123456789ab").startswith("s1st-")


def test_plan_cli_prints_both_documents(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["azureml-plan", str(example / "release.toml"), "--stage", "production"]) == 0
    out = capsys.readouterr().out
    assert "# DRIFT maxQueueWaitMs:" in out
    endpoint, deployment = yaml.safe_load_all(out)
    assert endpoint["$schema"].endswith("/kubernetesOnlineEndpoint.schema.json")
    assert deployment["$schema"].endswith("/kubernetesOnlineDeployment.schema.json")
    assert deployment["endpoint_name"] == endpoint["name"]


def test_plan_cli_unknown_stage_is_one_line_error(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["azureml-plan", str(example / "release.toml"), "--stage", "qa"]) == 2
    err = capsys.readouterr().err
    assert "stages.qa: stage 'qa' is not defined" in err and "Traceback" not in err


def test_promotion_names_are_valid_azure_names() -> None:
    from releasetest.azureml.mapping import release_deployment_name, stage_endpoint_name

    assert stage_endpoint_name("port-weather", "production") == "port-weather-production"
    long = stage_endpoint_name("9 Very_Long release name for the weather port", "production")
    assert long[0].isalpha() and len(long) <= 32 and not long.endswith("-") and set(long) <= set(
        "abcdefghijklmnopqrstuvwxyz0123456789-")
    assert release_deployment_name("f3e14ad970f8abcd") == "r-f3e14ad970f8"


def test_rollback_command_names_the_live_split() -> None:
    from releasetest.endpoint.azureml import BlueGreen
    from releasetest.endpoint.handle import EndpointHandle

    handle = EndpointHandle("azureml", "https://e/score", "https://e/", "https://e/swagger.json")
    first = BlueGreen(handle, "ep", "r-2", True, {}, {"r-2": 100})
    assert first.rollback is None
    second = BlueGreen(handle, "ep", "r-2", False, {"r-1": 100, "r-0": 0}, {"r-1": 0, "r-0": 0, "r-2": 100})
    assert second.rollback == 'az ml online-endpoint update --name ep --traffic "r-1=100 r-2=0"'
