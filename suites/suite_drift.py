"""Drift: is the evidence still about production, and was the candidate trained for it?

Three samples of each feature are compared under Azure ML model monitoring's metric names: the
training data's profile (``[drift] reference``), the holdout, and the recorded production inputs
(``[production] traffic``). A holdout far from production makes the acceptance evidence stale
(BLOCK or warn, ``[drift] stale_holdout``); a training sample far from production means the
candidate was trained for other data (``[drift] far_from_training``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from releasetest.checks.drift.config import DriftConfig
from releasetest.checks.drift.findings import FeatureRecord

if TYPE_CHECKING:
    from releasetest.checks.drift.evaluation import DriftEvaluation
from releasetest.release.data import Holdout
from releasetest.release.traffic import Traffic
from releasetest.run import ReleaseRun

pytestmark = pytest.mark.drift


@pytest.fixture(scope="session")
def drift_evaluation(release_run: ReleaseRun, holdout: Holdout, production_traffic: Traffic) -> DriftEvaluation:
    # scipy is imported here, not at collection: a gate without recorded traffic never pays for it.
    from releasetest.checks.drift.evaluation import evaluate

    cfg: DriftConfig = release_run.suite_configs["drift"]
    try:
        return evaluate(cfg, holdout, production_traffic)
    except ValueError as exc:
        pytest.fail(f"drift could not be measured: {exc} (fix [drift] in the manifest)", pytrace=False)


@pytest.fixture(autouse=True)
def _record(drift_evaluation: DriftEvaluation, release_record: Callable[[str, Any], None]) -> None:
    drift_evaluation.findings().record(release_record)


def _decide(records: list[FeatureRecord], action: str, what: str, key: str,
            release_record: Callable[[str, Any], None]) -> None:
    """BLOCK naming each drifted feature, its metric and threshold; or record it as a warning
    (kept in the findings, so it reaches the verdict from any xdist worker)."""
    drifted = [r for r in records if r.drifted]
    if not drifted:
        return
    message = f"{what}: " + "; ".join(r.describe() for r in drifted) + f" ([drift] {key} = \"{action}\")"
    if action == "block":
        pytest.fail(message, pytrace=False)
    release_record("warned", [message])


def test_holdout_represents_production(drift_evaluation: DriftEvaluation,
                                       release_record: Callable[[str, Any], None]) -> None:
    """The holdout's rows against production's: the acceptance evidence is only as current as they."""
    cfg = drift_evaluation.config
    _decide(drift_evaluation.findings().holdout_vs_production or [], cfg.stale_holdout,
            "the holdout no longer represents production (its evidence is stale)", "stale_holdout", release_record)


def test_trained_near_production(drift_evaluation: DriftEvaluation,
                                 release_record: Callable[[str, Any], None]) -> None:
    """The training data's profile against production's inputs."""
    records = drift_evaluation.findings().training_vs_production
    if records is None:
        pytest.skip("no training reference: set [drift] reference to the profile written at training time "
                    "(releasetest profile TRAIN.csv --out reference.json)")
    cfg = drift_evaluation.config
    _decide(records, cfg.far_from_training, "the candidate was trained on data far from production",
            "far_from_training", release_record)
