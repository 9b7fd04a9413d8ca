"""Task kinds without an endpoint: regression and multiclass metrics against scikit-learn, the
regression threshold direction, tolerance in parity and the golden check, and the [data] table."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from releasetest.checks.acceptance.config import Threshold
from releasetest.checks.acceptance.evaluation import check_threshold, parity_check
from releasetest.checks.metrics import regression_metrics
from releasetest.checks.registry import parse_all
from releasetest.checks.tasks import Classification, Regression, task_for
from releasetest.errors import ConfigError
from releasetest.release.data import load_holdout
from releasetest.release.manifest import Tolerance, load_release

DIABETES = Path(__file__).resolve().parent.parent / "examples" / "diabetes-regression"


def test_regression_metrics_agree_with_scikit_learn() -> None:
    from sklearn import metrics as skm

    rng = np.random.default_rng(3)
    y = rng.normal(150, 70, 300)
    pred = y + rng.normal(0, 40, 300)
    m = regression_metrics(y.tolist(), pred.tolist())
    assert m.values == pytest.approx({"mae": skm.mean_absolute_error(y, pred),
                                      "rmse": skm.root_mean_squared_error(y, pred),
                                      "r2": skm.r2_score(y, pred), "max_error": skm.max_error(y, pred)})
    assert regression_metrics([2.0, 2.0], [2.0, 2.0]).values["r2"] == 1.0  # constant truth: finite
    pairs, residuals = m.points(max_points=50)
    assert len(pairs) == len(residuals) == 50
    assert pairs[0] == [pytest.approx(y[0], rel=1e-5), pytest.approx(pred[0], rel=1e-5)]
    assert residuals[-1] == [pytest.approx(pred[-1], rel=1e-5), pytest.approx(y[-1] - pred[-1], rel=1e-4)]


def test_multiclass_string_labels_follow_the_classes_order() -> None:
    """Probabilities come in the order of ``classes`` (not sorted), and so does the confusion matrix."""
    from sklearn import metrics as skm

    classes = ("virginica", "setosa", "versicolor")
    rng = np.random.default_rng(5)
    y = [classes[i] for i in rng.integers(0, 3, 200)]
    proba = rng.dirichlet(np.ones(3), 200)
    proba[np.arange(200), [classes.index(c) for c in y]] += 0.5
    proba /= proba.sum(axis=1, keepdims=True)
    pred = [classes[i] for i in proba.argmax(axis=1)]
    m = Classification(classes).metrics(y, pred, proba)
    in_sorted_order = proba[:, [classes.index(c) for c in sorted(classes)]]  # what scikit-learn takes
    assert m.values["roc_auc"] == pytest.approx(skm.roc_auc_score(y, in_sorted_order, multi_class="ovr"))
    assert m.values["weighted_f1"] == pytest.approx(skm.f1_score(y, pred, average="weighted"))
    assert m.values["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m.values["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m.values["recall_setosa"] == pytest.approx(skm.recall_score(y, pred, labels=["setosa"], average="macro"))
    assert m.confusion.tolist() == skm.confusion_matrix(y, pred, labels=list(classes)).tolist()
    assert Classification(classes).invalid(["setosa", "iris"]) == (
        "labels outside the release's classes ['virginica', 'setosa', 'versicolor']: 'iris'")


def test_errors_must_go_down_against_a_baseline() -> None:
    task = Regression(Tolerance(1e-6, 1e-6))
    refs = {"mean": {"rmse": 77.0}}
    better = check_threshold(Threshold("rmse", "min_relative_change", 0.2, "mean"), {"rmse": 57.4}, refs, {},
                             task.lower_is_better("rmse"))
    assert better.passed and better.bound == pytest.approx(61.6)
    assert better.message == "rmse 57.4000 beats mean baseline 77.0000 by margin 20.00% (needs <= 61.6000)"
    worse = check_threshold(Threshold("rmse", "min_absolute_change", 5.0, "mean"), {"rmse": 75.0}, refs, {},
                            task.lower_is_better("rmse"))
    assert not worse.passed and worse.message.endswith("(needs <= 72.0000)")
    high = check_threshold(Threshold("mae", "max", 50.0), {"mae": 52.0}, refs, {})
    assert (high.passed, high.message) == (False, "mae 52.0000 is above the maximum 50.0000")
    assert not task.lower_is_better("r2")


def test_regression_constant_and_invalid_output() -> None:
    task = Regression(Tolerance())
    labels = [100.0, 150.0, 200.0]
    m = task.metrics(labels, [150.0] * 3)
    assert task.constant([150.0] * 3, labels, m) == (
        "the model predicts 150 for every one of the 3 holdout rows (standard deviation 0, the labels' 40.8): "
        "its output does not depend on the input")
    assert task.constant([149.0, 150.0, 151.0], labels, m) is None
    assert task.invalid([1.0, "2", float("nan"), None]) == "3 predictions are not finite numbers: '2', nan, None"


@pytest.fixture(scope="module")
def diabetes() -> tuple:
    rel = load_release(DIABETES / "release.toml")
    assert rel.data is not None
    return rel, load_holdout(rel.data)


def test_regression_parity_quotes_the_worst_row_and_golden_uses_the_tolerance(diabetes: tuple) -> None:
    rel, holdout = diabetes
    task = task_for(rel.data)
    assert isinstance(task, Regression) and rel.data.tolerance == Tolerance(1e-6, 1e-6)
    expected = list(holdout.expected)
    close = [e * (1 + 5e-7) for e in expected]
    assert parity_check(close, holdout, 0.999, task)["mismatching_rows"] == 0
    biased = [e * 1.05 for e in expected]
    parity = parity_check(biased, holdout, 0.999, task)
    assert parity["agreement"] == 0.0 and not parity["passed"]
    worst = int(np.argmax(np.abs(expected)))
    assert parity["worst"]["row"] == worst and parity["worst"]["got"] == biased[worst]
    rows, golden = holdout.golden(rel.data.golden_rows)
    assert len(rows) == 5, "a regression's golden rows are the first ones, not one per distinct value"
    assert golden.mismatch([e * (1 + 5e-7) for e in golden]) is None
    message = golden.mismatch([e * 1.05 for e in golden])
    assert message is not None and message.startswith(
        "5 of 5 golden rows differ from the training-time predictions (within abs 1e-06 + rel 1e-06): "
        f"row 1: got {golden[0] * 1.05!r}, recorded {golden[0]!r}")


def test_regression_release_configures_its_own_metrics_and_baselines(diabetes: tuple) -> None:
    rel, _ = diabetes
    cfg = parse_all(rel, rel.stage("devtest"))["acceptance"]
    assert cfg.task.name == "regression"
    assert {(t.metric, t.kind, t.reference) for t in cfg.thresholds} >= {("rmse", "min_relative_change", "mean"),
                                                                         ("r2", "min", None)}
    holdout = load_holdout(rel.data)
    bmi = holdout.rows[:, holdout.features.index("bmi")]
    assert cfg.task.baseline("persistence", holdout, "bmi").values == regression_metrics(holdout.labels, bmi).values
    assert cfg.task.baseline("median", holdout, None).values["mae"] == pytest.approx(
        np.abs(np.asarray(holdout.labels) - np.median(holdout.labels)).mean())


@pytest.fixture
def diabetes_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "release"
    shutil.copytree(DIABETES, dest, ignore=shutil.ignore_patterns("__pycache__", "train.py"))
    return dest / "release.toml"


@pytest.mark.parametrize(
    ("old", "new", "key", "fix"),
    [
        ('task = "regression"\n', "", "data.task", 'set task = "regression"'),
        ('task = "regression"\n', 'task = "regresion"\n', "data.task", "did you mean 'regression'?"),
        ('task = "regression"\n', 'task = "regression"\nclasses = [0, 1]\n', "data.classes", "remove classes"),
        ('task = "regression"\n', 'task = "classification"\n', "data.classes", "e.g. classes = [0, 1]"),
        ('task = "regression"\n', 'task = "classification"\nclasses = [0, 1]\n', "data.parity_tolerance",
         "remove it"),
        ("parity_tolerance = { abs = 1e-6, rel = 1e-6 }", "parity_tolerance = { abs = -1 }",
         "data.parity_tolerance.abs", "the absolute difference always allowed"),
        ("[acceptance.thresholds]\n", "[acceptance.thresholds]\naccuracy = { min = 0.9 }\n",
         "acceptance.thresholds.accuracy", "use one of: mae, rmse, r2, max_error"),
        ("[acceptance.thresholds]\n",
         "[acceptance.thresholds]\nmax_error = { min_absolute_change = { majority = 0.1 } }\n",
         "acceptance.thresholds.max_error.min_absolute_change.majority", "mean, median, persistence, champion"),
    ],
    ids=["task-missing", "task-typo", "regression-with-classes", "classification-without-classes",
         "tolerance-on-classification", "negative-tolerance", "classification-metric", "classification-baseline"],
)
def test_bad_task_settings_name_key_and_fix(diabetes_copy: Path, old: str, new: str, key: str, fix: str) -> None:
    text = diabetes_copy.read_text()
    assert old in text
    diabetes_copy.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        rel = load_release(diabetes_copy)
        parse_all(rel, rel.stage("devtest"))
    assert info.value.key == key
    assert fix in str(info.value.fix)


def test_non_numeric_regression_label_names_the_row(diabetes_copy: Path) -> None:
    holdout = diabetes_copy.parent / "data" / "holdout.csv"
    lines = holdout.read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",high"
    holdout.write_text("\n".join(lines) + "\n")
    rel = load_release(diabetes_copy)
    assert rel.data is not None
    with pytest.raises(ConfigError) as info:
        load_holdout(rel.data)
    assert info.value.key == "row 4, progression"
    assert "'high' is not a finite number" in str(info.value)
