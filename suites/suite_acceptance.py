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
from releasetest.checks.acceptance.evaluation import Evaluation, evaluate, parity_cause
from releasetest.checks.acceptance.findings import AcceptanceFindings, ProductionComparison
from releasetest.checks.acceptance.paired import against_production
from releasetest.checks.acceptance.scoring import BatchScores, champion_rows, score_rows
from releasetest.endpoint.base import Endpoint
from releasetest.endpoint.client import published_input
from releasetest.endpoint.formats import wire_of
from releasetest.endpoint.handle import EndpointHandle
from releasetest.errors import DeployError, EndpointError
from releasetest.release.data import Holdout
from releasetest.release.manifest import Release, Stage
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
        result = evaluate(cfg, holdout, scores, champion, champion_error)
    except EndpointError as exc:
        pytest.fail(str(exc), pytrace=False)
    if result.parity is not None and not result.parity["passed"]:
        try:
            published = published_input(endpoint)
        except EndpointError:
            published = None
        cause = parity_cause(result.parity, holdout, published, wire_of(endpoint))
        if cause:
            result.parity["cause"] = cause
    return result


@pytest.fixture(scope="session")
def production_comparison(evaluation: Evaluation, release_run: ReleaseRun, release_stage: Stage,
                          holdout: Holdout) -> ProductionComparison | None:
    """The candidate's predictions kept for history, and compared with production's (found in
    history, not deployed) when no champion is configured; None without a production release."""
    cfg = evaluation.config
    candidate = release_run.keep_predictions(cfg.task.name, evaluation.scores.predictions)
    if cfg.champion is not None:
        return None
    return against_production(release_run.settings.history_dir, release_stage.name, release_stage.promote_to,
                              candidate, holdout.labels, evaluation.candidate.values, cfg.production)


@pytest.fixture(autouse=True)
def _record(evaluation: Evaluation, production_comparison: ProductionComparison | None,
            release_record: Callable[[str, Any], None]) -> None:
    """Every acceptance test records the evaluation, so any selection of them fills the verdict."""
    evaluation.findings().record(release_record)
    if production_comparison is not None:
        AcceptanceFindings(production=production_comparison).record(release_record)


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
        cause = f"{parity['cause']}; " if parity.get("cause") else ""
        pytest.fail(f"{cause}training-serving parity {parity['agreement']:.4f} is below the required "
                    f"{parity['required']:.4f}: {parity['mismatching_rows']} of {len(holdout)} rows differ from "
                    f"expected_predictions (compared {parity['tolerance']}); "
                    f"{'worst' if 'worst' in parity else 'first'}: holdout row {shown['row']} expected "
                    f"{shown['expected']!r}, got {shown['got']!r} ({inputs})", pytrace=False)


def _assert_thresholds(evaluation: Evaluation, references: tuple[str | None, ...], missing: str | None = None) -> None:
    if not any(r.threshold.reference in references for r in evaluation.thresholds):
        pytest.skip(missing or "no threshold of this kind in [acceptance.thresholds]")
    failed = evaluation.failed(references)
    if failed:
        pytest.fail("; ".join(r.message for r in failed), pytrace=False)


def test_absolute_minimums(evaluation: Evaluation) -> None:
    _assert_thresholds(evaluation, (None,))


def test_beats_naive_baselines(evaluation: Evaluation) -> None:
    _assert_thresholds(evaluation, evaluation.config.task.baselines, evaluation.config.no_baseline)


def test_no_regression_against_champion(evaluation: Evaluation) -> None:
    _assert_thresholds(evaluation, ("champion",))


def test_no_regression_against_production(evaluation: Evaluation,
                                          production_comparison: ProductionComparison | None) -> None:
    if evaluation.config.champion is not None:
        pytest.skip("compared with the configured champion instead ([acceptance] champion)")
    if production_comparison is None:
        pytest.skip("no production release in history (a first release): nothing to compare with")
    if production_comparison.regressed:
        pytest.fail(production_comparison.headline(), pytrace=False)
