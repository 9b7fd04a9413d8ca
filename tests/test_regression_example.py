"""The regression example end to end through the real azmlinfsrv: it PROMOTEs on the acceptance
suite's regression metrics, and a 5% bias in its output BLOCKs on the tolerance, naming the rows
(one whole gate of the acceptance suite, one readiness failure). Every suite on a regression
release, whole, is test_v2_release's sample."""

from __future__ import annotations

import shutil

import pytest

from .conftest import INI, ReleaseProject, suites_gate
from .test_tasks import DIABETES

RETURN = "    return model.predict(data).tolist()"


@pytest.fixture
def diabetes_project(pytester: pytest.Pytester) -> ReleaseProject:
    shutil.copytree(DIABETES, pytester.path / "release", ignore=shutil.ignore_patterns("__pycache__", "train.py"))
    pytester.makeini(INI)
    return ReleaseProject(pytester, pytester.path)


def test_diabetes_regression_promotes(diabetes_project: ReleaseProject) -> None:
    result = diabetes_project.run_inprocess(*suites_gate("acceptance"))
    verdict = diabetes_project.verdict()
    assert result.ret == 0, "\n".join(verdict["reasons"])
    assert verdict["decision"] == "PROMOTE"
    found = verdict["findings"]["acceptance"]
    assert found["task"] == "regression"
    assert found["metrics"]["rmse"] == pytest.approx(57.375, abs=1e-3)
    assert set(found["references"]) == {"mean", "median"}
    assert len(found["predicted_vs_actual"]) == len(found["residuals"]) == 88
    assert found["parity"]["agreement"] == 1.0
    assert all(t["passed"] for t in found["thresholds"]) and len(found["thresholds"]) == 5


def test_five_percent_bias_blocks_on_the_tolerance(diabetes_project: ReleaseProject) -> None:
    diabetes_project.edit("score.py", RETURN, "    return (model.predict(data) * 1.05).tolist()")
    result = diabetes_project.run_inprocess("--release-stage", "devtest", "--release-require", "smoke", "-m", "smoke")
    assert result.ret == 1
    verdict = diabetes_project.verdict()
    assert verdict["decision"] == "BLOCK"
    reason = verdict["reasons"][0]
    assert reason.startswith("the endpoint is up, but 5 of 5 golden rows differ from the training-time predictions "
                             "(within abs 1e-06 + rel 1e-06): row 1: got 140.84"), reason
