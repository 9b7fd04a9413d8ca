"""An MLflow model deployed without a scoring script, served as Azure ML's no-code deployment serves it,
gated end to end against a real local azmlinfsrv."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from releasetest.release.manifest import load_release

from .conftest import INI
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
