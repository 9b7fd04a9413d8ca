"""Metrics against hand-computed values; the [acceptance] table's checks; thresholds and baselines."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from releasetest.checks.acceptance.config import Threshold
from releasetest.checks.acceptance.evaluation import check_threshold, evaluate, parity_check
from releasetest.checks.acceptance.scoring import BatchScores
from releasetest.checks.metrics import binary_auc, classification_metrics, metric_names, roc_auc
from releasetest.checks.registry import parse_all
from releasetest.checks.tasks import (
    Classification,
    constant_prediction,
    majority_baseline,
    persistence_baseline,
)
from releasetest.errors import ConfigError
from releasetest.release.data import load_holdout
from releasetest.release.manifest import load_release

from .conftest import EXAMPLE

# --- metrics, by hand ---------------------------------------------------------------------------
# y_true  1 1 1 0 0 1 0 1      confusion (rows true 0/1, columns predicted 0/1): [[2, 1], [1, 4]]
# y_pred  1 0 1 0 1 1 0 1      recall 2/3, 4/5; precision 2/3, 4/5
# score  .9 .4 .8 .3 .6 .7 .1 .6   AUC: of 5*3 pos/neg pairs, 13 won and one tie -> 13.5/15
Y_TRUE = [1, 1, 1, 0, 0, 1, 0, 1]
Y_PRED = [1, 0, 1, 0, 1, 1, 0, 1]
P1 = np.array([0.9, 0.4, 0.8, 0.3, 0.6, 0.7, 0.1, 0.6])


def test_binary_metrics_by_hand() -> None:
    m = classification_metrics(Y_TRUE, Y_PRED, (0, 1), np.column_stack([1 - P1, P1]))
    assert m.confusion.tolist() == [[2, 1], [1, 4]]
    expected = {
        "accuracy": 6 / 8, "balanced_accuracy": (2 / 3 + 4 / 5) / 2, "macro_f1": (2 / 3 + 4 / 5) / 2,
        "weighted_f1": (3 * 2 / 3 + 5 * 4 / 5) / 8, "roc_auc": 13.5 / 15,
        "precision_0": 2 / 3, "recall_0": 2 / 3, "f1_0": 2 / 3,
        "precision_1": 4 / 5, "recall_1": 4 / 5, "f1_1": 4 / 5,
    }
    assert m.values == pytest.approx(expected)
    assert set(m.values) == set(metric_names((0, 1)))
    assert m.distribution == {"0": 3 / 8, "1": 5 / 8}
    assert m.confusion_dict() == {"labels": [0, 1], "matrix": [[2, 1], [1, 4]]}


def test_multiclass_metrics_by_hand() -> None:
    # confusion [[1,0,0],[0,0,1],[0,1,1]]: recall 1, 0, 1/2; precision 1, 0, 1/2; F1 1, 0, 1/2
    m = classification_metrics(["a", "b", "c", "c"], ["a", "c", "c", "b"], ("a", "b", "c"))
    assert m.confusion.tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 1]]
    assert m.values["accuracy"] == 0.5
    assert m.values["balanced_accuracy"] == pytest.approx(0.5)
    assert m.values["macro_f1"] == pytest.approx(0.5)
    assert (m.values["precision_b"], m.values["f1_c"]) == (0.0, 0.5)
    assert "roc_auc" not in m.values  # no probabilities, no AUC


def test_constant_predictions_score_their_share_and_half_auc() -> None:
    m = classification_metrics([1, 1, 1, 0], [1, 1, 1, 1], (0, 1), np.tile([0.2, 0.8], (4, 1)))
    assert m.values["accuracy"] == 0.75
    assert m.values["balanced_accuracy"] == 0.5
    assert m.values["precision_0"] == 0.0  # never predicted: zero, not a division error
    assert m.values["roc_auc"] == 0.5
    assert constant_prediction([1, 1, 1]) == 1 and constant_prediction([1, 0]) is None


def test_auc_edge_cases() -> None:
    assert binary_auc(np.array([True, False]), np.array([0.9, 0.1])) == 1.0
    assert binary_auc(np.array([True, True]), np.array([0.9, 0.1])) is None
    # One-vs-rest macro for three classes; perfect scores give 1.
    s = np.eye(3)[[0, 1, 2, 2]]
    assert roc_auc(["a", "b", "c", "c"], s, ("a", "b", "c")) == 1.0


def test_metrics_agree_with_scikit_learn() -> None:
    from sklearn import metrics as skm

    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 500).tolist()
    p = rng.random(500)
    pred = (p > 0.4).astype(int).tolist()
    m = classification_metrics(y, pred, (0, 1), np.column_stack([1 - p, p]))
    assert m.values["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m.values["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m.values["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))


# --- thresholds, baselines, parity ------------------------------------------------------------------


def test_threshold_messages_say_what_was_needed() -> None:
    refs = {"majority": {"balanced_accuracy": 0.5}, "champion": {"accuracy": 0.96}}
    beat = check_threshold(Threshold("balanced_accuracy", "min_absolute_change", 0.05, "majority"),
                           {"balanced_accuracy": 0.5}, refs, {})
    assert not beat.passed and beat.bound == pytest.approx(0.55)
    assert beat.message == ("balanced_accuracy 0.5000 does not beat majority baseline 0.5000 by margin 0.0500 "
                            "(needs >= 0.5500)")
    tol = check_threshold(Threshold("accuracy", "min_relative_change", -0.01, "champion"), {"accuracy": 0.951},
                          refs, {})
    assert tol.passed and tol.bound == pytest.approx(0.96 * 0.99)
    assert tol.message.startswith("accuracy 0.9510 stays within tolerance 1.00% of champion 0.9600")
    low = check_threshold(Threshold("accuracy", "min", 0.97), {"accuracy": 0.95}, refs, {})
    assert (low.passed, low.message) == (False, "accuracy 0.9500 is below the minimum 0.9700")
    auc = check_threshold(Threshold("roc_auc", "min", 0.9), {"accuracy": 0.95}, refs, {})
    assert not auc.passed and "no probabilities" in auc.message
    gone = check_threshold(Threshold("accuracy", "min_absolute_change", 0.0, "champion"), {"accuracy": 0.95},
                           {}, {"champion": "champion x could not be scored: down"})
    assert not gone.passed and "could not be scored" in gone.message
    assert set(gone.record().to_json()) >= {"metric", "kind", "bound", "value", "reference", "passed"}


def test_baselines_and_parity_on_the_example_holdout() -> None:
    rel = load_release(EXAMPLE / "release.toml")
    assert rel.data is not None
    holdout = load_holdout(rel.data)
    preds, _ = majority_baseline(holdout.labels, (0, 1))
    assert set(preds) == {1}
    persist, _ = persistence_baseline(holdout, "Current_weather_condition", (0, 1))
    assert classification_metrics(holdout.labels, persist, (0, 1)).values["accuracy"] == pytest.approx(0.9425, abs=1e-4)
    assert holdout.expected is not None
    got = list(holdout.expected)
    got[3] = 1 - got[3]
    parity = parity_check(got, holdout, 0.999, Classification((0, 1)))
    assert parity["passed"] and parity["mismatching_rows"] == 1
    assert parity["mismatches"][0]["row"] == 3 and set(parity["mismatches"][0]["inputs"]) == set(holdout.features)
    assert not parity_check([1 - p for p in holdout.expected], holdout, 0.999, Classification((0, 1)))["passed"]


def test_evaluate_records_every_reference() -> None:
    rel = load_release(EXAMPLE / "release.toml")
    assert rel.data is not None
    holdout = load_holdout(rel.data)
    cfg = parse_all(rel, rel.stage("devtest"))["acceptance"]
    assert holdout.expected is not None
    scores = BatchScores(list(holdout.expected), None, 1.0, 8)
    ev = evaluate(cfg, holdout, scores)
    findings = ev.findings().to_json()
    assert set(findings["references"]) == {"majority", "persistence"}
    assert findings["metrics"]["accuracy"] == pytest.approx(0.9559, abs=1e-4)
    # Without probabilities the AUC thresholds cannot pass: they say so rather than vanish.
    assert [r.threshold.metric for r in ev.thresholds if not r.passed] == ["roc_auc", "roc_auc"]
    assert findings["parity"]["agreement"] == 1.0


# --- the [acceptance] table ---------------------------------------------------------------------


@pytest.fixture
def example(tmp_path: Path) -> Path:
    dest = tmp_path / "release"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("weather.csv", "__pycache__"))
    return dest


def _with_acceptance(example: Path, table: str) -> Path:
    manifest = example / "release.toml"
    text = manifest.read_text()
    manifest.write_text(text[: text.index("[acceptance]")] + table)
    return manifest


@pytest.mark.parametrize(
    ("table", "key", "fix"),
    [
        ("[acceptance]\nbatchsize = 5\n", "acceptance.batchsize", "did you mean 'batch_size'?"),
        ("[acceptance]\nbatch_size = 0\n", "acceptance.batch_size", "e.g. batch_size = 500"),
        ("[acceptance]\nparity = 99.9\n", "acceptance.parity", "e.g. parity = 0.999"),
        ("[acceptance.thresholds]\naccuracyy = { min = 0.9 }\n", "acceptance.thresholds.accuracyy",
         "did you mean 'accuracy'?"),
        ("[acceptance.thresholds]\naccuracy = { min = \"high\" }\n", "acceptance.thresholds.accuracy.min",
         "e.g. min = 0.8"),
        ("[acceptance.thresholds]\naccuracy = { minimum = 0.9 }\n", "acceptance.thresholds.accuracy.minimum",
         "did you mean 'min'?"),
        ("[acceptance.thresholds]\naccuracy = { min_absolute_change = { majorty = 0.1 } }\n",
         "acceptance.thresholds.accuracy.min_absolute_change.majorty", "did you mean 'majority'?"),
        ("[acceptance.thresholds]\naccuracy = { min_absolute_change = { persistence = 0.1 } }\n",
         "acceptance.thresholds", "name the feature persistence repeats"),
        ("[acceptance]\npersistence_feature = \"Tomorrow\"\n", "acceptance.persistence_feature",
         "Current_weather_condition"),
        ("[acceptance]\nchampion = \"../nowhere/release.toml\"\n", "acceptance.champion",
         "point at another one"),
        ("[acceptance]\nchampion = \"release.toml\"\n", "acceptance.champion", "the release now in production"),
        ("[acceptance]\nchampion = \"https://prod.example/score\"\n", "acceptance.champion",
         "champion = -0.01"),
    ],
    ids=["unknown-key", "batch-zero", "parity-range", "unknown-metric", "wrong-type", "unknown-kind",
         "unknown-reference", "persistence-unset", "persistence-feature", "champion-missing", "champion-self",
         "champion-unused"],
)
def test_bad_acceptance_table_names_key_and_fix(example: Path, table: str, key: str, fix: str) -> None:
    rel = load_release(_with_acceptance(example, table))
    with pytest.raises(ConfigError) as info:
        parse_all(rel, rel.stage("devtest"))
    assert info.value.key == key
    assert info.value.file == str(rel.manifest)
    assert fix in str(info.value.fix)


def test_no_acceptance_table_means_beat_the_majority(example: Path) -> None:
    rel = load_release(_with_acceptance(example, ""))
    cfg = parse_all(rel, rel.stage("devtest"))["acceptance"]
    assert cfg.thresholds == (Threshold("balanced_accuracy", "min_absolute_change", 0.05, "majority"),)
    assert cfg.champion is None


def test_champion_by_manifest_and_by_url(example: Path, tmp_path: Path) -> None:
    shutil.copytree(example, tmp_path / "prod")
    rel = load_release(_with_acceptance(example, "[acceptance]\nchampion = \"../prod/release.toml\"\n"
                                        "[acceptance.thresholds]\naccuracy = { min_absolute_change = "
                                        "{ champion = -0.01 } }\n"))
    champ = parse_all(rel, rel.stage("devtest"))["acceptance"].champion
    assert champ.release is not None and champ.release.manifest == (tmp_path / "prod" / "release.toml").resolve()
    rel = load_release(_with_acceptance(example, "[acceptance]\nchampion = \"http://127.0.0.1:9/score\"\n"
                                        "[acceptance.thresholds]\naccuracy = { min_relative_change = "
                                        "{ champion = -0.01 } }\n"))
    champ = parse_all(rel, rel.stage("devtest"))["acceptance"].champion
    assert champ.url == "http://127.0.0.1:9/score" and champ.release is None
