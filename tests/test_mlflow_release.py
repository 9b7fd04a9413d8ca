"""An MLflow model deployed without a scoring script, served as Azure ML's no-code deployment serves it,
gated end to end against a real local azmlinfsrv."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

from releasetest.release.environment import CondaEnv, nocode_additions, parse_conda_env
from releasetest.release.manifest import load_release

from .conftest import INI, gate_inprocess
from .test_environment import index_unreachable
from .test_v2_release import MLFLOW, copy, edit, gate_promotes

pytest.importorskip("mlflow.pyfunc", reason="the mlflow extra is not installed")


def test_gating_an_mlflow_release_does_not_import_mlflow_in_the_gate() -> None:
    code = ("import sys; from releasetest.release.manifest import load_release; "
            f"load_release({str(MLFLOW / 'release.toml')!r}); import releasetest.plugin; "
            "print('mlflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.long
def test_mlflow_no_code_release_promotes(pytester: pytest.Pytester) -> None:
    verdict = gate_promotes(pytester, MLFLOW)
    release = load_release(pytester.path / "release" / "release.toml")
    assert verdict["release"]["id"] == release.release_id
    assert {f["path"] for f in verdict["release"]["artifacts"][0]["files"]} >= {"model/MLmodel", "model/model.pkl"}


@pytest.mark.long
def test_a_signature_that_refuses_the_holdout_blocks(pytester: pytest.Pytester) -> None:
    """Columns typed ``long`` (as inferred from an integer example) refuse the holdout's fractional values."""
    release = copy(MLFLOW, pytester.path)
    pytester.makeini(INI)
    edit(release / "model" / "MLmodel", '{"type": "double", "name": "bmi"', '{"type": "long", "name": "bmi"')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--release-stage", "devtest", "-m", "smoke",
                                           timeout=300)
    assert result.ret != 0
    verdict = json.loads((pytester.path / "releasetest-out" / "verdict.json").read_text())
    assert verdict["decision"] == "BLOCK"
    reasons = " ".join(verdict["reasons"])
    assert "the MLflow signature in " in reasons and "types column 'bmi' as long" in reasons, reasons
    assert "fix: infer the signature from float data" in reasons, reasons


def test_no_code_additions_are_what_the_model_leaves_out_at_the_gates_versions(tmp_path: Path) -> None:
    """A package the model's file names keeps the file's pin; full mlflow stands for mlflow-skinny."""
    def gate(name: str) -> str:
        return f"{name}=={importlib.metadata.version(name)}"

    assert nocode_additions(parse_conda_env(MLFLOW / "model" / "conda.yaml")) == (
        gate("azureml-inference-server-http"),)
    env = CondaEnv(path=tmp_path / "conda.yaml", python="=3.11", pip=("mlflow==2.7.1", "Pandas>=2"),
                   conda=("numpy=2.4",))
    assert nocode_additions(env) == (gate("azureml-inference-server-http"),)
    bare = CondaEnv(path=tmp_path / "conda.yaml", python="=3.11", pip=("scikit-learn==1.9.1",), conda=())
    assert nocode_additions(bare) == tuple(gate(n) for n in ("azureml-inference-server-http", "mlflow-skinny",
                                                             "pandas", "numpy"))


@pytest.mark.long
def test_isolated_serves_the_no_code_model_from_its_pins_plus_the_server(
        pytester: pytest.Pytester, env_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow writes a conda.yaml without the inference server; ``--release-env isolated`` builds the
    model's own pins plus what the no-code script needs and the file leaves out, records that, and
    serves from the venv (needs the package index; the venv is cached in ``env_cache``)."""
    reason = index_unreachable()
    if reason:
        pytest.skip(reason)
    monkeypatch.setenv("RELEASETEST_CACHE_DIR", str(env_cache))
    copy(MLFLOW, pytester.path)
    pytester.makeini(INI)
    result = gate_inprocess(pytester, "--release-stage", "devtest", "--release-env", "isolated",
                            "--release-require", "smoke", "-m", "smoke")
    verdict = json.loads((pytester.path / "releasetest-out" / "verdict.json").read_text())
    assert verdict["decision"] == "PROMOTE", verdict["reasons"]
    check = verdict["environment"]["conda_check"]
    server = importlib.metadata.version("azureml-inference-server-http")
    assert check["added"] == [f"azureml-inference-server-http=={server}"]
    assert check["mode"] == "isolated" and check["mismatches"] == []
    assert check["interpreter"].startswith(str(env_cache)) and check["interpreter"] != sys.executable
    assert result.ret == 0
