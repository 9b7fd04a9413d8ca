"""The comparison with production without an endpoint: McNemar and Wilcoxon against hand-computed
values, degradations that must and must not count, the holdout-digest mismatch, the settings
parser, finding production in history records, and the predictions store at 200,000 rows."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from releasetest.checks.acceptance.paired import (
    EXACT_BELOW,
    ComparisonSettings,
    ProductionComparison,
    against_production,
    compare,
    mcnemar,
    stratified_mcnemar,
    wilcoxon_errors,
)
from releasetest.errors import ConfigError
from releasetest.verdict.predictions import (
    Predictions,
    PredictionsUnreadable,
    holdout_digest,
    load_predictions,
    predictions_path,
    read_predictions,
    save_predictions,
)
from releasetest.verdict.production import Production, find_production, production_in

CLASSES = (3, 5, 7)
PROD = Production("sha256:" + "a" * 64, "wine", "promoted to prod at 2026-12-01T10:00:00+00:00")
DIGEST = "sha256:" + "d" * 64


def _classification(n: int, prod_acc: float, worse: float, better: float, seed: int) -> tuple[list[int], Any, Any]:
    """Labels, production and candidate predictions where ``worse``/``better`` shares of the rows
    production got right/wrong flip correctness in the candidate: a retrain that loses some rows
    and wins others."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(CLASSES, n).tolist()
    wrong = {c: [o for o in CLASSES if o != c] for c in CLASSES}
    prod_right = rng.random(n) < prod_acc
    flip = np.where(prod_right, rng.random(n) < worse, rng.random(n) < better)
    cand_right = prod_right ^ flip
    pick = rng.integers(0, 2, n)
    prod = [y if ok else wrong[y][k] for y, ok, k in zip(labels, prod_right, pick, strict=True)]
    cand = [y if ok else wrong[y][k] for y, ok, k in zip(labels, cand_right, pick, strict=True)]
    return labels, Predictions.encode(PROD.release_id, DIGEST, "classification", prod, CLASSES), \
        Predictions.encode("sha256:" + "c" * 64, DIGEST, "classification", cand, CLASSES)


def test_mcnemar_matches_hand_computed_values() -> None:
    exact = mcnemar(8, 2)  # 10 changed rows: exact, 2 * P(X <= 2) for X ~ Binomial(10, 1/2)
    assert exact.name == "McNemar exact binomial"
    assert exact.p_value == pytest.approx(2 * (1 + 10 + 45) / 1024, rel=1e-12)
    chi = mcnemar(30, 10)  # (|30 - 10| - 1)² / 40 = 9.025; P(chi²₁ > x) = erfc(sqrt(x / 2))
    assert chi.name == "McNemar chi-squared, continuity-corrected"
    assert chi.statistic == pytest.approx(9.025)
    assert chi.p_value == pytest.approx(math.erfc(math.sqrt(9.025 / 2)), rel=1e-9)
    assert (chi.worse, chi.better) == (30, 10)
    assert mcnemar(EXACT_BELOW - 1, 0).statistic is None
    assert mcnemar(EXACT_BELOW, 0).statistic is not None
    assert mcnemar(20, 20).p_value == 1.0
    assert mcnemar(0, 0).p_value == 1.0


def test_a_retrain_on_less_data_is_a_significant_regression() -> None:
    # production right on 96.3%; the retrain loses 7% of those rows and wins back 20% of the rest:
    # about 0.963 -> 0.91 accuracy, as the issue's 30%-data retrain.
    labels, prod, cand = _classification(3000, 0.963, 0.07, 0.20, seed=1)
    result = compare(cand, labels, PROD, prod, {}, ComparisonSettings())
    assert result.paired and result.regressed
    assert result.test is not None and result.test.p_value < 1e-10
    assert result.test.worse > 5 * result.test.better > 0
    acc = result.deltas[0]
    assert acc.metric == "accuracy" and acc.production == pytest.approx(0.963, abs=0.01)
    assert acc.delta == pytest.approx(acc.candidate - acc.production)
    assert acc.low is not None and acc.high is not None and acc.low < acc.delta < acc.high < 0
    assert result.deltas[1].metric == "balanced_accuracy" and result.deltas[1].delta < 0
    assert f"wine@{'a' * 12}" in result.message and "accuracy" in result.message
    assert f"{result.test.worse} rows got worse and {result.test.better} better" in result.message
    assert "p = " in result.message and result.message.startswith("regression against production")


def _knn(train_x: np.ndarray, train_y: np.ndarray, x: np.ndarray, k: int = 7) -> list[int]:
    """A k-nearest-neighbours vote in numpy (importing scikit-learn costs seconds of CPU here)."""
    d2 = (x ** 2).sum(1)[:, None] - 2 * x @ train_x.T + (train_x ** 2).sum(1)[None, :]
    nearest = train_y[np.argpartition(d2, k, axis=1)[:, :k]]
    return (nearest[:, :, None] == np.arange(3)).sum(1).argmax(1).tolist()


def test_a_real_retrain_on_30_percent_of_the_data_blocks() -> None:
    # a 3-D checkerboard of 3 classes: a model that learns from examples loses accuracy with fewer
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 4, (8000, 3))
    y = (np.floor(x).sum(1) % 3).astype(np.int64)
    train_x, train_y, hold_x, labels = x[:6000], y[:6000], x[6000:], y[6000:].tolist()
    digest = holdout_digest(("a", "b", "c"), hold_x, labels)
    prod = Predictions.encode(PROD.release_id, digest, "classification", _knn(train_x, train_y, hold_x), (0, 1, 2))
    cand = Predictions.encode("sha256:" + "c" * 64, digest, "classification",
                              _knn(train_x[:1800], train_y[:1800], hold_x), (0, 1, 2))
    result = compare(cand, labels, PROD, prod, {}, ComparisonSettings())
    assert result.regressed and result.test is not None and result.test.p_value < 0.01
    assert result.test.worse > result.test.better > 0  # a retrain loses rows and wins some back
    assert result.deltas[0].production > 0.85 > result.deltas[0].candidate
    assert not compare(prod, labels, PROD, cand, {}, ComparisonSettings()).regressed  # the other way round


def test_identical_predictions_are_not_a_regression() -> None:
    labels, prod, _ = _classification(3000, 0.9, 0, 0, seed=2)
    same = Predictions.encode("sha256:" + "c" * 64, DIGEST, "classification", prod.decoded(), CLASSES)
    result = compare(same, labels, PROD, prod, {}, ComparisonSettings())
    assert result.paired and not result.regressed
    assert result.test is not None and (result.test.worse, result.test.better, result.test.p_value) == (0, 0, 1.0)
    assert result.deltas[0].delta == 0.0 and "none of the 3000 holdout rows went from right to wrong" in result.message


def test_the_issues_small_holdout_drop_is_not_evidence() -> None:
    # The issue's wine numbers: 54 holdout rows, 0.963 -> 0.907 is 3 rows lost and none won.
    labels = [3] * 54
    prod = Predictions.encode(PROD.release_id, DIGEST, "classification", [3] * 52 + [5] * 2, CLASSES)
    cand = Predictions.encode(PROD.release_id, DIGEST, "classification", [3] * 49 + [5] * 5, CLASSES)
    result = compare(cand, labels, PROD, prod, {}, ComparisonSettings())
    assert result.test is not None and result.test.p_value == pytest.approx(0.25)  # 2 * (1/2)³
    assert not result.regressed and "is not below 0.01" in result.message


def test_a_significant_drop_within_tolerance_does_not_block() -> None:
    labels, prod, cand = _classification(20000, 0.95, 0.02, 0.2, seed=3)  # about 0.95 -> 0.941
    strict = compare(cand, labels, PROD, prod, {}, ComparisonSettings(tolerance=0.0))
    assert strict.regressed
    lenient = compare(cand, labels, PROD, prod, {}, ComparisonSettings(tolerance=0.05))
    assert not lenient.regressed and "within the tolerated 5.0%" in lenient.message


def test_a_small_class_traded_for_the_large_one_blocks_on_balanced_accuracy() -> None:
    # 9,000 rows of class 3, 1,000 of class 5; production's recalls 0.95 and 0.80. The retrain gets
    # 150 more class-3 rows right and 150 class-5 rows wrong: accuracy unchanged (McNemar p = 1),
    # balanced accuracy (0.875 -> 0.8083) 7.6% worse.
    labels = [3] * 9000 + [5] * 1000
    prod = [3] * 8550 + [5] * 450 + [5] * 800 + [3] * 200
    cand = [3] * 8700 + [5] * 300 + [5] * 650 + [3] * 350
    result = compare(Predictions.encode("sha256:" + "c" * 64, DIGEST, "classification", cand, CLASSES), labels, PROD,
                     Predictions.encode(PROD.release_id, DIGEST, "classification", prod, CLASSES), {},
                     ComparisonSettings())
    assert result.regressed and result.metric == "balanced_accuracy"
    assert result.deltas[0].delta == 0 and result.deltas[1].delta == pytest.approx(-0.0667, abs=1e-4)
    assert result.test is not None and result.test.name == "McNemar stratified by class (balanced accuracy)"
    assert (result.test.worse, result.test.better) == (150, 150) and result.test.p_value < 1e-4
    assert result.drop == pytest.approx(0.0762, abs=1e-4)
    assert result.headline().startswith(f"regression against production wine@{'a' * 12}: balanced_accuracy 0.8083 "
                                        "vs 0.8750 (7.6% worse, tolerated 1.0%); 150 rows got worse, 150 better; "
                                        "McNemar stratified by class (balanced accuracy) p = ")
    assert result.line().endswith(": BLOCK (below 0.01, beyond the tolerated 1.0%)")
    # the same trade between equal classes moves neither metric
    traded = [3] * 850 + [5] * 150 + [5] * 650 + [3] * 350
    before = [3] * 700 + [5] * 300 + [5] * 800 + [3] * 200
    same_trade_balanced = compare(
        Predictions.encode("sha256:" + "c" * 64, DIGEST, "classification", traded, CLASSES), [3] * 1000 + [5] * 1000,
        PROD, Predictions.encode(PROD.release_id, DIGEST, "classification", before, CLASSES), {}, ComparisonSettings())
    assert not same_trade_balanced.regressed and same_trade_balanced.metric == "accuracy"
    assert "(balanced_accuracy: +0.0000, McNemar stratified by class (balanced accuracy), p = 1: no regression " \
           "either)" in same_trade_balanced.message


def test_the_stratified_test_on_one_class_is_mcnemars_exact_test() -> None:
    from scipy import stats

    truth = np.zeros(60, dtype=np.int64)
    prod_ok = np.array([True] * 50 + [False] * 10)
    cand_ok = prod_ok.copy()
    cand_ok[:9] = False  # 9 rows worse
    cand_ok[50:52] = True  # 2 better
    test = stratified_mcnemar(truth, cand_ok, prod_ok)
    exact = stats.binomtest(2, 11, 0.5).pvalue  # 0.065
    assert (test.worse, test.better) == (9, 2)
    assert test.p_value == pytest.approx(exact, abs=0.003)  # 100,000 draws: Monte Carlo error about 8e-4
    assert stratified_mcnemar(truth, cand_ok, prod_ok) == test, "seeded: the same counts give the same p-value"
    assert stratified_mcnemar(truth, prod_ok, prod_ok).p_value == 1.0


def test_regression_task_uses_wilcoxon_on_absolute_errors() -> None:
    rng = np.random.default_rng(4)
    truth = rng.normal(150, 70, 2000)
    prod_pred = truth + rng.normal(0, 40, 2000)
    cand_pred = truth + rng.normal(0, 46, 2000)
    prod = Predictions.encode(PROD.release_id, DIGEST, "regression", prod_pred.tolist())
    cand = Predictions.encode("sha256:" + "c" * 64, DIGEST, "regression", cand_pred.tolist())
    result = compare(cand, truth.tolist(), PROD, prod, {}, ComparisonSettings())
    assert result.metric == "mae" and result.regressed
    assert result.test is not None and result.test.name == "Wilcoxon signed-rank on absolute errors"
    assert [d.metric for d in result.deltas] == ["mae", "rmse"]
    rmse = result.deltas[1]
    assert rmse.production == pytest.approx(np.sqrt(np.mean((prod_pred - truth) ** 2)), rel=1e-5)
    assert rmse.low is not None and rmse.high is not None and 0 < rmse.low < rmse.delta < rmse.high
    same = compare(prod, truth.tolist(), PROD, prod, {}, ComparisonSettings())
    assert not same.regressed and same.test is not None and same.test.p_value == 1.0
    assert "none of the 2000 holdout rows changed its absolute error" in same.message
    # the hand-computed Wilcoxon statistic on three rows: changes +1, -2, +3 -> ranks 1, 2, 3; W = min(4, 2)
    small = wilcoxon_errors(np.array([2.0, 1.0, 4.0]), np.array([1.0, 3.0, 1.0]))
    assert (small.statistic, small.worse, small.better) == (2.0, 2, 1)
    # exact: W+ over the 8 sign patterns is 0, 1, 2, 3, 3, 4, 5, 6; min(W+, W-) <= 2 in 6 of them
    assert small.p_value == pytest.approx(6 / 8)


def test_a_different_holdout_compares_metrics_only() -> None:
    labels, prod, cand = _classification(3000, 0.963, 0.07, 0.20, seed=1)
    other = Predictions("sha256:" + "a" * 64, "sha256:" + "e" * 64, "classification", prod.values, CLASSES)
    verdict = {"findings": {"acceptance": {"metrics": {"accuracy": 0.963, "balanced_accuracy": 0.96}}}}
    production = Production(PROD.release_id, "wine", PROD.how, verdict)
    result = compare(cand, labels, production, other, {"accuracy": 0.907, "balanced_accuracy": 0.9},
                     ComparisonSettings())
    assert not result.paired and not result.regressed and result.test is None
    assert result.production_holdout == "sha256:" + "e" * 64
    assert "the holdout differs from the one production" in result.message
    assert "metrics compared only, no paired test" in result.message and "beyond the tolerated" in result.message
    assert [(d.metric, d.low) for d in result.deltas] == [("accuracy", None), ("balanced_accuracy", None)]
    assert result.deltas[0].delta == pytest.approx(-0.056)
    none_kept = compare(cand, labels, production, None, {"accuracy": 0.97}, ComparisonSettings())
    assert "history keeps no predictions of production" in none_kept.message and not none_kept.regressed


def test_production_kept_with_another_class_order_still_pairs() -> None:
    labels, prod, cand = _classification(3000, 0.963, 0.07, 0.20, seed=1)
    reordered = (7, 3, 5)
    prod_other = Predictions.encode(PROD.release_id, DIGEST, "classification", prod.decoded(), reordered)
    assert prod_other.values.tolist() != prod.values.tolist()
    same_order = compare(cand, labels, PROD, prod, {}, ComparisonSettings())
    assert compare(cand, labels, PROD, prod_other, {}, ComparisonSettings()) == same_order


def test_against_production_from_a_history_directory(tmp_path: Path) -> None:
    labels, prod, cand = _classification(3000, 0.963, 0.07, 0.20, seed=1)
    (tmp_path / "verdicts").mkdir()
    verdict = _verdict(PROD.release_id, "devtest", "PROMOTE", "2026-12-01T01",
                       findings={"acceptance": {"metrics": {"accuracy": 0.963}}})
    (tmp_path / "verdicts" / "prod.json").write_text(json.dumps(verdict))
    settings = ComparisonSettings()
    first = Predictions.encode(PROD.release_id, DIGEST, "classification", prod.decoded(), CLASSES)
    assert against_production(tmp_path, "devtest", "prod", first, labels, {}, settings) is None  # itself only
    assert against_production(tmp_path, "devtest", "prod", cand, labels, {"accuracy": 0.9}, settings) is not None
    save_predictions(tmp_path, prod)
    found = against_production(tmp_path, "devtest", "prod", cand, labels, {"accuracy": 0.9}, settings)
    assert found is not None and found.paired and found.regressed and found.production_id == PROD.release_id
    assert found.how == "last PROMOTE of devtest at 2026-12-01T01"
    predictions_path(tmp_path, PROD.release_id, DIGEST).write_bytes(b"not a zip")
    broken = against_production(tmp_path, "devtest", "prod", cand, labels, {"accuracy": 0.9}, settings)
    assert broken is not None and not broken.paired and not broken.regressed
    assert "kept predictions cannot be read" in broken.message and "fix: delete it" in broken.message
    assert broken.deltas[0].delta == pytest.approx(-0.063)


def test_comparison_round_trips_through_json() -> None:
    labels, prod, cand = _classification(500, 0.9, 0.1, 0.1, seed=5)
    result = compare(cand, labels, PROD, prod, {}, ComparisonSettings())
    again = ProductionComparison.from_json(json.loads(json.dumps(result.to_json())) | {"added_later": 1})
    assert again == result


def test_z95_is_scipys_quantile_and_scipy_loads_lazily() -> None:
    import subprocess
    import sys

    from scipy import stats

    from releasetest.checks.acceptance.paired import Z95

    assert Z95 == float(stats.norm.ppf(0.975))
    code = "import sys, releasetest.checks.acceptance.paired; print('scipy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          check=True).stdout.strip() == "False"


def _acceptance(tmp_path: Path, table: str) -> Any:
    """The example's [acceptance] table replaced by ``table``, parsed as the gate parses it."""
    import shutil

    from releasetest.checks.registry import parse_all
    from releasetest.release.manifest import load_release
    from tests.conftest import EXAMPLE

    dest = tmp_path / "release"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("weather.csv", "__pycache__"))
    manifest = dest / "release.toml"
    text = manifest.read_text()
    manifest.write_text(text[: text.index("[acceptance]")] + table)
    release = load_release(manifest)
    return parse_all(release, release.stage("devtest"))["acceptance"]


def test_settings_are_acceptance_keys(tmp_path: Path) -> None:
    assert _acceptance(tmp_path, "").production == ComparisonSettings(0.01, 0.01)
    got = _acceptance(tmp_path, "[acceptance]\nproduction_p_value = 0.05\nproduction_tolerance = 0\nparity = 0.99\n")
    assert got.production == ComparisonSettings(0.05, 0.0) and got.parity == 0.99
    with pytest.raises(ConfigError) as err:
        _acceptance(tmp_path, "[acceptance]\nproduction_p_value = 2\n")
    assert str(err.value).startswith(f"{tmp_path / 'release' / 'release.toml'}: acceptance.production_p_value: "
                                     "expected a number > 0 and <= 0.5")
    assert "(fix: a regression against production BLOCKs only when" in str(err.value)
    with pytest.raises(ConfigError, match="acceptance.production_tolerance: expected a number, got str"):
        _acceptance(tmp_path, '[acceptance]\nproduction_tolerance = "1%"\n')
    with pytest.raises(ConfigError, match="did you mean 'production_p_value'"):
        _acceptance(tmp_path, "[acceptance]\nproduction_pvalue = 0.05\n")


def _verdict(rid: str, stage: str, decision: str, at: str, **extra: Any) -> dict[str, Any]:
    return {"release": {"id": rid, "name": f"r-{rid[-1]}"}, "stage": stage, "decision": decision,
            "finished_at": at, "digest": f"sha256:{rid[-1]}{at}", "partial": False, **extra}


def test_find_production_prefers_the_last_promotion_not_rolled_back() -> None:
    v1 = _verdict("sha256:1", "devtest", "PROMOTE", "2026-12-01T01")
    v2 = _verdict("sha256:2", "devtest", "PROMOTE", "2026-12-01T02")
    v3 = _verdict("sha256:3", "devtest", "PROMOTE", "2026-12-01T03")
    promos = [{"release_id": "sha256:2", "release": "r-2", "to": "prod", "at": "2026-12-01T05",
               "verdict_digest": v2["digest"]},
              {"release_id": "sha256:1", "release": "r-1", "to": "prod", "at": "2026-12-01T04",
               "verdict_digest": v1["digest"]},
              {"release_id": "sha256:3", "release": "r-3", "to": "staging", "at": "2026-12-01T06"}]
    found = find_production([v3, v1, v2], promos, [], "devtest", "prod", "sha256:9")
    assert found is not None and (found.release_id, found.verdict) == ("sha256:2", v2)
    assert found.how == "promoted to prod at 2026-12-01T05"
    rolled = [{"stage": "prod", "promotion_at": "2026-12-01T05"}]
    assert find_production([v1, v2, v3], promos, rolled, "devtest", "prod", "sha256:9").release_id == "sha256:1"
    # no promotion to the stage's promote_to: the last PROMOTE of this stage, never the candidate itself
    fallback = find_production([v1, v2, v3], promos, [], "devtest", "uat", "sha256:3")
    assert fallback is not None and fallback.release_id == "sha256:2"
    assert fallback.how == "last PROMOTE of devtest at 2026-12-01T02"
    blocked = _verdict("sha256:4", "devtest", "BLOCK", "2026-12-01T07")
    partial = _verdict("sha256:5", "devtest", "PROMOTE", "2026-12-01T08", partial=True)
    other_stage = _verdict("sha256:6", "staging", "PROMOTE", "2026-12-01T09")
    assert find_production([v1, blocked, partial, other_stage], [], [], "devtest", None,
                           "sha256:9").release_id == "sha256:1"
    assert find_production([blocked, other_stage], [], [], "devtest", "prod", "sha256:9") is None


def test_production_in_reads_the_history_directory(tmp_path: Path) -> None:
    v1 = _verdict("sha256:1", "devtest", "PROMOTE", "2026-12-01T01")
    (tmp_path / "verdicts").mkdir()
    (tmp_path / "verdicts" / "one.json").write_text(json.dumps(v1))
    (tmp_path / "verdicts" / "broken.json").write_text("{")
    assert production_in(tmp_path, "devtest", "prod", "sha256:9").release_id == "sha256:1"
    assert production_in(tmp_path / "none", "devtest", "prod", "sha256:9") is None


def test_store_round_trips_200k_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    n = 200_000
    rows = rng.normal(size=(n, 4))
    labels = rng.choice(CLASSES, n).tolist()
    digest = holdout_digest(("a", "b", "c", "d"), rows, labels)
    assert digest == holdout_digest(("a", "b", "c", "d"), rows.copy(), list(labels))
    assert digest == holdout_digest(("a", "b", "c", "d"), rows, np.asarray(labels).tolist())
    assert digest == holdout_digest(("a", "b", "c", "d"), rows, list(np.asarray(labels)))  # numpy scalars
    rows[7, 2] += 1e-9
    assert digest != holdout_digest(("a", "b", "c", "d"), rows, labels)
    preds = rng.choice(CLASSES, n).tolist()
    kept = Predictions.encode("sha256:" + "f" * 64, digest, "classification", preds, CLASSES)
    path = save_predictions(tmp_path, kept)
    assert path == predictions_path(tmp_path, kept.release_id, digest) and path.parent.name == "predictions"
    assert path.stat().st_size < 80_000  # log2(3) bits a row: about 40 kB of entropy
    back = load_predictions(tmp_path, kept.release_id, digest)
    assert back is not None and back.decoded() == preds and back.header() == kept.header()
    values = rng.normal(150, 70, n)
    reg = Predictions.encode("sha256:" + "f" * 64, "sha256:" + "1" * 64, "regression", values.tolist())
    save_predictions(tmp_path, reg)
    assert predictions_path(tmp_path, reg.release_id, reg.holdout_digest).stat().st_size < n * 4 + 2_000
    again = load_predictions(tmp_path, reg.release_id, reg.holdout_digest)
    assert again is not None and again.values.dtype == np.float32
    assert np.array_equal(again.values, values.astype(np.float32))
    numpy_classes = Predictions.encode("sha256:" + "e" * 64, digest, "classification", preds[:10],
                                       tuple(np.asarray(CLASSES)))
    assert read_predictions(save_predictions(tmp_path, numpy_classes)).classes == CLASSES
    # without the pairable digest: the most recently written holdout's, whose digest says so
    assert load_predictions(tmp_path, reg.release_id, "sha256:" + "9" * 64).holdout_digest == reg.holdout_digest
    assert load_predictions(tmp_path, "sha256:" + "0" * 64, digest) is None


def test_store_refuses_broken_files(tmp_path: Path) -> None:
    kept = Predictions.encode("sha256:" + "f" * 64, DIGEST, "classification", [3, 5, 7] * 100, CLASSES)
    path = save_predictions(tmp_path, kept)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(PredictionsUnreadable, match="not a readable predictions file.*fix: delete it"):
        read_predictions(path)
    with pytest.raises(ValueError, match="prediction 4 is not one of the classes"):
        Predictions.encode("sha256:1", DIGEST, "classification", [3, 4], CLASSES)
