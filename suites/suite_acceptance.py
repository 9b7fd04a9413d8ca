"""Acceptance: is the candidate model good enough to replace production?

The whole holdout is scored through the live endpoint (not in-process), once per session, and
compared with naive baselines (the release's task names them: majority class or mean/median, and
persistence), the champion (the release in production, deployed side by side or reached by URL)
and the predictions recorded at training time. Each test checks one kind of decision so each
failure is its own BLOCK reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from releasetest.checks.acceptance.config import AcceptanceConfig
from releasetest.checks.acceptance.evaluation import Evaluation, evaluate
from releasetest.checks.acceptance.scoring import BatchScores, champion_rows, score_rows
from releasetest.endpoint.base import Endpoint
from releasetest.endpoint.handle import EndpointHandle
from releasetest.errors import DeployError, EndpointError
from releasetest.release.data import Holdout
from releasetest.release.manifest import Release
from releasetest.run import ReleaseRun

pytestmark = pytest.mark.acceptance


@pytest.fixture(scope="session")
def acceptance_config(release_run: ReleaseRun, release: Release) -> AcceptanceConfig:
    cfg: AcceptanceConfig = release_run.suite_configs["acceptance"]
    return cfg


def _score_champion(endpoint: Endpoint, cfg: AcceptanceConfig, release: Release) -> BatchScores:
    """Deploy (or reach) the champion, score the same holdout, and stop it again right away."""
    assert cfg.champion is not None
    try:
        handle = endpoint.deploy()
        return score_rows(handle, champion_rows(cfg.champion, release), cfg.batch_size, cfg.concurrency)
    finally:
        endpoint.teardown()


@pytest.fixture(scope="session")
def evaluation(endpoint: EndpointHandle, holdout: Holdout, release: Release, acceptance_config: AcceptanceConfig,
               champion_endpoint: Endpoint | None) -> Evaluation:
    """The candidate scored through its endpoint, the references, and every threshold decision."""
    assert release.data is not None
    cfg = acceptance_config
    try:
        scores = score_rows(endpoint, holdout.rows, cfg.batch_size, cfg.concurrency)
    except EndpointError as exc:
        pytest.fail(f"scoring the holdout through the endpoint failed: {exc}", pytrace=False)
    champion, champion_error = None, None
    if cfg.champion is not None and champion_endpoint is not None:
        try:
            champion = _score_champion(champion_endpoint, cfg, release)
        except (DeployError, EndpointError) as exc:
            champion_error = f"champion {cfg.champion.source} could not be scored: {str(exc).splitlines()[0]}"
    try:
        return evaluate(cfg, holdout, scores, champion, champion_error)
    except EndpointError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(autouse=True)
def _record(evaluation: Evaluation, release_record: Callable[[str, Any], None]) -> None:
    """Every acceptance test records the evaluation, so any selection of them fills the verdict."""
    evaluation.findings().record(release_record)


def test_holdout_scored_through_endpoint(evaluation: Evaluation, holdout: Holdout) -> None:
    assert len(evaluation.scores.predictions) == len(holdout)
    assert not evaluation.notes, "; ".join(evaluation.notes)


def test_predictions_are_not_constant(evaluation: Evaluation, holdout: Holdout) -> None:
    problem = evaluation.config.task.constant(evaluation.scores.predictions, holdout.labels, evaluation.candidate)
    if problem:
        pytest.fail(problem, pytrace=False)


def test_training_serving_parity(evaluation: Evaluation, holdout: Holdout) -> None:
    parity = evaluation.parity
    if parity is None:
        pytest.skip("the release ships no expected_predictions to compare with")
    if not parity["passed"]:
        shown = parity.get("worst") or parity["mismatches"][0]
        inputs = ", ".join(f"{k}={v:g}" for k, v in shown["inputs"].items())
        pytest.fail(f"training-serving parity {parity['agreement']:.4f} is below the required "
                    f"{parity['required']:.4f}: {parity['mismatching_rows']} of {len(holdout)} rows differ from "
                    f"expected_predictions (compared {parity['tolerance']}); "
                    f"{'worst' if 'worst' in parity else 'first'}: holdout row {shown['row']} expected "
                    f"{shown['expected']!r}, got {shown['got']!r} ({inputs})", pytrace=False)


def _assert_thresholds(evaluation: Evaluation, references: tuple[str | None, ...]) -> None:
    if not any(r.threshold.reference in references for r in evaluation.thresholds):
        pytest.skip("no threshold of this kind in [acceptance.thresholds]")
    failed = evaluation.failed(references)
    if failed:
        pytest.fail("; ".join(r.message for r in failed), pytrace=False)


def test_absolute_minimums(evaluation: Evaluation) -> None:
    _assert_thresholds(evaluation, (None,))


def test_beats_naive_baselines(evaluation: Evaluation) -> None:
    _assert_thresholds(evaluation, evaluation.config.task.baselines)


def test_no_regression_against_champion(evaluation: Evaluation) -> None:
    _assert_thresholds(evaluation, ("champion",))
