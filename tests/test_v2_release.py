"""Azure ML CLI v2 releases: the deployment and endpoint YAML read as the CLI reads them, the release id
binding every tested byte, and the v2 sample gated end to end against a real local azmlinfsrv."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from releasetest.azureml.v2 import DEFAULT_PROBE, parse_ref
from releasetest.cli import main
from releasetest.errors import ConfigError
from releasetest.release.manifest import MLFLOW_SCORE, load_release
from releasetest.run import _uncompared
from releasetest.scaffold import init_release

from .conftest import INI, assert_clean_pass, gate_inprocess, port_closed, process_group_gone

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SAMPLE = EXAMPLES / "v2-managed-sample"
MLFLOW = EXAMPLES / "mlflow-nocode"


def copy(example: Path, root: Path) -> Path:
    dest = root / "release"
    shutil.copytree(example, dest, ignore=shutil.ignore_patterns("__pycache__", "train.py"))
    return dest


def gate_promotes(pytester: pytest.Pytester, example: Path) -> dict[str, Any]:
    """A copy of ``example`` gated whole (not a partial run), as a user runs it; its PROMOTE verdict."""
    copy(example, pytester.path)
    pytester.makeini(INI.replace("release_partial_ok = true\n", ""))
    result = gate_inprocess(pytester, "--release-stage", "devtest")
    assert_clean_pass(result)
    assert result.ret == 0, result.stdout.str()[-3000:]
    verdict: dict[str, Any] = json.loads((pytester.path / "releasetest-out" / "verdict.json").read_text())
    assert verdict["decision"] == "PROMOTE"
    return verdict


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return copy(SAMPLE, tmp_path)


def test_sample_reads_with_v2_defaults(sample: Path) -> None:
    release = load_release(sample / "release.toml")
    dc = release.stage("devtest").deployment
    assert release.v2 is dc
    assert (dc.scoring_timeout_ms, dc.scoring_timeout_from_config) == (5000, False)
    assert dc.max_concurrent_requests_per_container == 1
    assert dc.readiness_bound_s == DEFAULT_PROBE["initial_delay"] + DEFAULT_PROBE["period"] * 30
    assert (dc.instance_type, dc.cpu, dc.instance_count, dc.worker_count) == ("Standard_DS3_v2", 4.0, 1, 1)
    assert dc.auth_enabled
    assert release.inference.entry_script == sample / "onlinescoring" / "score.py"
    assert release.inference.conda_file == sample / "environment" / "conda.yaml"
    [model] = release.artifacts
    assert [f.path.relative_to(sample).as_posix() for f in model.files] == ["model/sklearn_regression_model.pkl"]


def test_request_settings_probes_and_variables_are_taken_from_the_yaml(sample: Path) -> None:
    edit(sample / "blue-deployment.yml", "instance_count: 1", "instance_count: 3\nrequest_settings:\n"
         "  request_timeout_ms: 900\n  max_concurrent_requests_per_instance: 4\nreadiness_probe:\n"
         "  period: 5\n  failure_threshold: 2\nenvironment_variables:\n  WORKER_COUNT: 2\n  GREETING: hi")
    dc = load_release(sample / "release.toml").stage("devtest").deployment
    assert (dc.scoring_timeout_ms, dc.scoring_timeout_from_config) == (900, True)
    assert dc.max_concurrent_requests_per_container == 4
    assert dc.readiness_bound_s == DEFAULT_PROBE["initial_delay"] + 5 * 2
    assert (dc.worker_count, dc.instance_count, dc.environment_variables["GREETING"]) == (2, 3, "hi")


@pytest.mark.parametrize("relpath", ["model/sklearn_regression_model.pkl", "onlinescoring/score.py",
                                     "environment/conda.yaml", "blue-deployment.yml", "endpoint.yml"])
def test_release_id_binds_every_tested_byte(sample: Path, relpath: str) -> None:
    before = load_release(sample / "release.toml").release_id
    with (sample / relpath).open("ab") as f:
        f.write(b"\n# changed\n" if not relpath.endswith(".pkl") else b"\0")
    assert load_release(sample / "release.toml").release_id != before


def test_a_new_file_in_the_code_folder_changes_the_release_id(sample: Path) -> None:
    before = load_release(sample / "release.toml").release_id
    (sample / "onlinescoring" / "helpers.py").write_text("X = 1\n")
    assert load_release(sample / "release.toml").release_id != before


@pytest.mark.parametrize("sdk", [True, False], ids=["with-azure-ai-ml", "own-checker-only"])
def test_a_deployment_key_typo_is_one_line_with_did_you_mean(sample: Path, sdk: bool,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    if not sdk:
        monkeypatch.setitem(sys.modules, "azure.ai.ml", None)  # import azure.ai.ml raises ImportError
    edit(sample / "blue-deployment.yml", "instance_type:", "instance_typ:")
    with pytest.raises(ConfigError) as err:
        load_release(sample / "release.toml")
    text = str(err.value)
    assert "\n" not in text
    assert text == (f"{sample / 'blue-deployment.yml'}: instance_typ: unknown key "
                    "(fix: did you mean 'instance_type'?)")


def test_a_bad_value_names_the_key_and_the_fix(sample: Path) -> None:
    edit(sample / "blue-deployment.yml", "instance_count: 1",
         "instance_count: 1\nrequest_settings:\n  request_timeout_ms: soon")
    with pytest.raises(ConfigError, match=r"blue-deployment.yml: request_settings.request_timeout_ms: expected a "
                       r"whole number, got str 'soon' \(fix: milliseconds one scoring request may take"):
        load_release(sample / "release.toml")


def test_azure_ai_ml_refusal_becomes_one_line(sample: Path) -> None:
    """A value the gate's table allows but Azure's schema refuses (an endpoint name with an underscore)."""
    edit(sample / "endpoint.yml", "name: diabetes-endpoint", "name: diabetes_endpoint!")
    with pytest.raises(ConfigError) as err:
        load_release(sample / "release.toml")
    assert str(err.value).startswith(f"{sample / 'endpoint.yml'}: azure-ai-ml refuses this online endpoint:")
    assert "\n" not in str(err.value)


def test_missing_model_folder_and_scoring_script_are_named(sample: Path) -> None:
    edit(sample / "blue-deployment.yml", "path: model/", "path: models/")
    with pytest.raises(ConfigError, match=r"blue-deployment.yml: model.path: model not found at .*models"):
        load_release(sample / "release.toml")
    edit(sample / "blue-deployment.yml", "path: models/", "path: model/")
    edit(sample / "blue-deployment.yml", "scoring_script: score.py", "scoring_script: scores.py")
    with pytest.raises(ConfigError, match=r"code_configuration.scoring_script: scoring script not found"):
        load_release(sample / "release.toml")


def test_v1_and_v2_stages_do_not_mix(sample: Path) -> None:
    edit(sample / "release.toml", 'endpoint = "endpoint.yml"\ndeployment = "blue-deployment.yml"\nrequires_approval',
         'deployment_config = "aci.yml"\nrequires_approval')
    with pytest.raises(ConfigError, match=r"stages.production.deployment_config: stage production is v1 while "
                       "stage devtest is v2"):
        load_release(sample / "release.toml")


def test_stages_must_name_the_same_model_code_and_environment(sample: Path) -> None:
    shutil.copy(sample / "blue-deployment.yml", sample / "green-deployment.yml")
    edit(sample / "green-deployment.yml", "image: mcr", "image: other.azurecr.io/x\n  #")
    edit(sample / "green-deployment.yml", "conda_file: environment/conda.yaml", "conda_file: env2.yaml")
    shutil.copy(sample / "environment" / "conda.yaml", sample / "env2.yaml")
    edit(sample / "release.toml", 'deployment = "blue-deployment.yml"\nrequires_approval',
         'deployment = "green-deployment.yml"\nrequires_approval')
    with pytest.raises(ConfigError, match=r"stages.production.deployment: green-deployment.yml names another "
                       "model, code or environment than blue-deployment.yml"):
        load_release(sample / "release.toml")


def test_a_registered_model_needs_a_registry(sample: Path) -> None:
    edit(sample / "blue-deployment.yml", "model:\n  path: model/", "model: azureml:diabetes-model:3")
    with pytest.raises(ConfigError, match=r"model: azureml:diabetes-model:3 is a registered model, and no model "
                       "registry was given"):
        load_release(sample / "release.toml")


def test_registered_model_references_are_parsed() -> None:
    ref = parse_ref("azureml:diabetes-model:3")
    assert ref is not None and (ref.name, ref.version, ref.registry) == ("diabetes-model", "3", None)
    ref = parse_ref("azureml://registries/azureml/models/sklearn-diabetes/versions/2")
    assert ref is not None and (ref.name, ref.version, ref.registry) == ("sklearn-diabetes", "2", "azureml")
    assert parse_ref("diabetes-model:3") is None


def test_an_unpinned_registered_model_is_refused(sample: Path) -> None:
    edit(sample / "blue-deployment.yml", "model:\n  path: model/", "model: azureml:diabetes-model@latest")
    with pytest.raises(ConfigError, match=r"model: 'azureml:diabetes-model@latest' names no version"):
        load_release(sample / "release.toml")


def test_mlflow_model_without_code_gets_the_no_code_scoring_script(tmp_path: Path) -> None:
    release = load_release(copy(MLFLOW, tmp_path) / "release.toml")
    assert release.inference.entry_script == MLFLOW_SCORE
    assert release.inference.conda_file == tmp_path / "release" / "model" / "conda.yaml"
    assert "mlflow" not in sys.modules or "releasetest" not in str(getattr(sys.modules["mlflow"], "__file__", ""))


@pytest.mark.parametrize("mode", ["warn", "strict", "isolated"])
def test_a_registered_environment_says_it_cannot_be_compared_and_what_would_do(sample: Path, mode: str) -> None:
    edit(sample / "blue-deployment.yml", "environment:\n  conda_file: environment/conda.yaml\n"
         "  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest\n",
         "environment: azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu:1\n")
    release = load_release(sample / "release.toml")
    stage, ref = release.stage("devtest"), "azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu:1"
    assert release.inference.conda_file is None
    need = (f"give the deployment environment: {{conda_file: ..., image: ...}} with the conda file the environment "
            f"was built from (az ml environment show shows it for {ref})")
    if mode == "warn":
        [line] = _uncompared(stage, None, "local", mode)
        assert line == (f"environment not compared: blue-deployment.yml names the registered or curated environment "
                        f"{ref}, whose packages the gate cannot read, so this run served from its own interpreter; "
                        f"to compare, {need}")
        assert _uncompared(stage, None, "url", mode) == [], "another target's environment is not the gate's to compare"
        return
    with pytest.raises(ConfigError) as refused:
        _uncompared(stage, None, "local", mode)
    verb = "build from" if mode == "isolated" else "compare with"
    assert f"cannot read what it installs, so --release-env {mode} has nothing to {verb}" in str(refused.value)
    assert f"fix: {need}, or use --release-env warn" in str(refused.value)


def test_custom_model_without_code_is_refused(sample: Path) -> None:
    edit(sample / "blue-deployment.yml", "code_configuration:\n  code: onlinescoring/\n  scoring_script: score.py\n",
         "")
    with pytest.raises(ConfigError, match=r"blue-deployment.yml: code_configuration: missing: a custom_model needs "
                       "a scoring script"):
        load_release(sample / "release.toml")


@pytest.mark.long
def test_v2_sample_promotes(pytester: pytest.Pytester) -> None:
    verdict = gate_promotes(pytester, SAMPLE)
    assert verdict["release"]["id"] == load_release(pytester.path / "release" / "release.toml").release_id
    info = verdict["endpoint"]
    assert (info["scoring_timeout_ms"], info["max_concurrent_requests_per_instance"], info["cores"]) == (5000, 1, 4.0)
    # The gate's own traffic (readiness, acceptance, schema, smoke, and the load window sized to the cap) stays
    # within what the endpoint admits at once: the server's log has no 429.
    assert info["admits"] == 2
    log = Path(info["log"]).read_text(encoding="utf-8")
    assert '"POST /score HTTP/1.1" 200' in log and '"POST /score HTTP/1.1" 429' not in log
    assert process_group_gone(info["pid"]) and port_closed(info["port"])


@pytest.mark.long
def test_a_folder_made_by_init_v2_promotes(pytester: pytest.Pytester) -> None:
    """What a new user starts from: README's ``releasetest init --v2``, ``python train.py``, ``releasetest hash
    --write``, the gate. Narrowed to the suites that read what init wrote (its load table is the examples' kind,
    gated there)."""
    folder = pytester.path / "release"
    init_release(folder, "wine-v2", v2=True)
    subprocess.run([sys.executable, "train.py"], cwd=folder, check=True, capture_output=True, timeout=300)
    assert main(["hash", "--write", str(folder / "release.toml")]) == 0
    pytester.makeini(INI)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--release-stage", "devtest", "--release-require",
                                           "acceptance,schema,smoke", "-m", "acceptance or schema or smoke",
                                           timeout=400)
    verdict = json.loads((pytester.path / "releasetest-out" / "verdict.json").read_text())
    assert result.ret == 0 and verdict["decision"] == "PROMOTE", verdict["reasons"]
    assert verdict["release"]["name"] == "wine-v2" and verdict["endpoint"]["admits"] == 2
    assert not verdict["warnings"], verdict["warnings"]


@pytest.mark.long
def test_v1_model_path_under_a_v2_folder_model_blocks_with_the_cause(pytester: pytest.Pytester) -> None:
    release = copy(SAMPLE, pytester.path)
    pytester.makeini(INI)
    edit(release / "onlinescoring" / "score.py", '"model", "sklearn_regression_model.pkl"',
         '"sklearn_regression_model.pkl"')
    result = gate_inprocess(pytester, "--release-stage", "devtest", "-m", "smoke")
    assert result.ret != 0
    verdict = json.loads((pytester.path / "releasetest-out" / "verdict.json").read_text())
    assert verdict["decision"] == "BLOCK"
    reason = verdict["reasons"][0]
    assert "init() raised FileNotFoundError:" in reason
    assert "under a v2 folder model the file is at AZUREML_MODEL_DIR/model/..." in reason


def test_a_v2_stage_without_a_deployment_names_the_v2_key(sample: Path) -> None:
    edit(sample / "release.toml", 'endpoint = "endpoint.yml"\ndeployment = "blue-deployment.yml"\nrequires_approval',
         "requires_approval")
    with pytest.raises(ConfigError, match=r"release.toml: stages.production.deployment: missing \(fix: add "
                       r'deployment = "blue-deployment.yml" \(v2\)'):
        load_release(sample / "release.toml")
