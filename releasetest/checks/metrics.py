"""Classification and regression metrics on the holdout, numpy only.

Written by hand (not scikit-learn) so the definitions the gate enforces are visible in one place
and cannot shift with a library upgrade: zero-division gives 0, balanced accuracy averages recall
over the classes that occur in the truth, ROC AUC is the Mann-Whitney statistic with ties counted
as one half (so a constant score is exactly 0.5), averaged one-vs-rest over classes. R² of a
constant truth is 1 when predicted exactly, else 0 (scikit-learn's ``force_finite``), never a NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Points kept per curve in the verdict: enough for a smooth plot, small enough for the verdict.
CURVE_POINTS = 60

#: Metrics a threshold may name, besides the per-class ones (``precision_<class>`` ...).
SCALAR_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "roc_auc")
PER_CLASS = ("precision", "recall", "f1")


def metric_names(classes: Sequence[Any]) -> tuple[str, ...]:
    """Every metric name a threshold may use for these classes."""
    return SCALAR_METRICS + tuple(f"{kind}_{c}" for kind in PER_CLASS for c in classes)


def confusion_matrix(y_true: Sequence[Any], y_pred: Sequence[Any], classes: Sequence[Any]) -> np.ndarray:
    """Rows are true classes, columns predicted classes, both in the order of ``classes``.

    A label outside ``classes`` counts in no cell; callers check labels first.
    """
    index = {c: i for i, c in enumerate(classes)}
    m = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        if t in index and p in index:
            m[index[t], index[p]] += 1
    return m


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def binary_auc(positive: np.ndarray, scores: np.ndarray) -> float | None:
    """P(score of a random positive > score of a random negative), ties count one half.

    ``None`` when only one side is present (AUC is undefined).
    """
    pos = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    values, inverse, counts = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True,
                                        return_counts=True)
    # Average 1-based rank of each distinct value: ties share the mean of the ranks they span.
    first_rank = np.cumsum(counts) - counts + 1
    avg_rank = first_rank + (counts - 1) / 2.0
    rank_sum = float(avg_rank[inverse][pos].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def _thin(points: np.ndarray, max_points: int) -> list[list[float]]:
    """Evenly spaced rows of an (n, 2) curve, always keeping both ends, rounded for the verdict."""
    if len(points) > max_points:
        points = points[np.unique(np.linspace(0, len(points) - 1, max_points).round().astype(int))]
    return [[round(float(x), 4), round(float(y), 4)] for x, y in points]


def binary_curves(positive: np.ndarray, scores: np.ndarray,
                  max_points: int = CURVE_POINTS) -> tuple[list[list[float]], list[list[float]]] | None:
    """ROC ``[[fpr, tpr]]`` and precision-recall ``[[recall, precision]]``, one point per distinct
    score threshold (highest first), downsampled; ``None`` when only one side is present."""
    pos = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    s, pos = s[order], pos[order]
    last_of_tie = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tp = np.cumsum(pos)[last_of_tie].astype(np.float64)
    fp = (last_of_tie + 1 - tp).astype(np.float64)
    roc = np.column_stack([np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos]])
    pr = np.column_stack([tp / n_pos, tp / (tp + fp)])
    return _thin(roc, max_points), _thin(pr, max_points)


def roc_pr_curves(y_true: Sequence[Any], scores: np.ndarray, classes: Sequence[Any],
                  max_points: int = CURVE_POINTS) -> dict[str, dict[str, list[list[float]]]]:
    """One-vs-rest ROC and precision-recall curves per class present in the truth, keyed by
    ``str(class)``: what the report plots beside the ROC AUC the gate thresholds on."""
    truth = np.asarray(list(y_true), dtype=object)
    s = np.asarray(scores, dtype=np.float64)
    out: dict[str, dict[str, list[list[float]]]] = {"roc": {}, "pr": {}}
    for k, c in enumerate(classes):
        curves = binary_curves(truth == c, s[:, k], max_points)
        if curves is not None:
            out["roc"][str(c)], out["pr"][str(c)] = curves
    return out


def roc_auc(y_true: Sequence[Any], scores: np.ndarray, classes: Sequence[Any]) -> float | None:
    """One-vs-rest ROC AUC, macro-averaged over classes present in the truth.

    ``scores[:, k]`` is the score of ``classes[k]`` (probabilities in the order of ``classes``).
    For two classes this equals the AUC of the positive class's probability.
    """
    truth = np.asarray(list(y_true), dtype=object)
    s = np.asarray(scores, dtype=np.float64)
    if len(classes) == 2:
        return binary_auc(truth == classes[1], s[:, 1])
    aucs = [auc for k, c in enumerate(classes) if (auc := binary_auc(truth == c, s[:, k])) is not None]
    return float(np.mean(aucs)) if aucs else None


@dataclass(frozen=True)
class Metrics:
    """Everything the gate can threshold on, plus the tables the report shows."""

    classes: tuple[Any, ...]
    values: dict[str, float]
    confusion: np.ndarray
    distribution: dict[str, float]
    curves: dict[str, dict[str, list[list[float]]]] | None = None

    def confusion_dict(self) -> dict[str, Any]:
        return {"labels": list(self.classes), "matrix": self.confusion.tolist()}


def classification_metrics(
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    classes: Sequence[Any],
    scores: np.ndarray | None = None,
) -> Metrics:
    """Accuracy, balanced accuracy, per-class precision/recall/F1, macro-F1, ROC AUC and the ROC
    and precision-recall curves (when ``scores`` are given), confusion matrix and the predicted
    class distribution."""
    classes = tuple(classes)
    if len(y_true) != len(y_pred) or not len(y_true):
        raise ValueError(f"need equally many labels and predictions, got {len(y_true)} and {len(y_pred)}")
    cm = confusion_matrix(y_true, y_pred, classes)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    seen = (support > 0) | (predicted > 0)
    n = len(y_true)
    values: dict[str, float] = {
        "accuracy": float(sum(t == p for t, p in zip(y_true, y_pred, strict=True)) / n),
        "balanced_accuracy": float(recall[support > 0].mean()) if (support > 0).any() else 0.0,
        "macro_f1": float(f1[seen].mean()) if seen.any() else 0.0,
        "weighted_f1": float((f1 * support).sum() / n),
    }
    curves = None
    if scores is not None:
        auc = roc_auc(y_true, scores, classes)
        if auc is not None:
            values["roc_auc"] = float(auc)
        curves = roc_pr_curves(y_true, scores, classes)
    for k, c in enumerate(classes):
        values[f"precision_{c}"] = float(precision[k])
        values[f"recall_{c}"] = float(recall[k])
        values[f"f1_{c}"] = float(f1[k])
    distribution = {str(c): float(predicted[k] / n) for k, c in enumerate(classes)}
    return Metrics(classes=classes, values=values, confusion=cm, distribution=distribution, curves=curves)


def class_distribution(labels: Sequence[Any], classes: Sequence[Any]) -> dict[str, float]:
    """Share of each class among ``labels`` (by ``str(class)``, as JSON keys)."""
    n = len(labels)
    return {str(c): sum(1 for x in labels if x == c) / n if n else 0.0 for c in classes}


#: Regression metrics a threshold may name; all but ``r2`` are errors, where lower is better.
REGRESSION_METRICS = ("mae", "rmse", "r2", "max_error")
LOWER_IS_BETTER = frozenset({"mae", "rmse", "max_error"})


#: Points kept for the predicted-vs-actual and residual plots in the verdict.
PLOT_POINTS = 500


@dataclass(frozen=True)
class RegressionMetrics:
    """Error metrics, plus the (actual, predicted) pairs the report plots."""

    values: dict[str, float]
    actual: np.ndarray
    predicted: np.ndarray

    def points(self, max_points: int = PLOT_POINTS) -> tuple[list[list[float]], list[list[float]]]:
        """``[[actual, predicted]]`` and ``[[predicted, actual - predicted]]``, evenly downsampled
        in holdout order, rounded to 6 significant digits: a few KiB however large the holdout."""
        idx = np.arange(len(self.actual))
        if len(idx) > max_points:
            idx = np.unique(np.linspace(0, len(idx) - 1, max_points).round().astype(int))
        a, p = self.actual[idx], self.predicted[idx]
        return [[_sig(x), _sig(y)] for x, y in zip(a, p, strict=True)], \
            [[_sig(y), _sig(x - y)] for x, y in zip(a, p, strict=True)]


def _sig(x: float) -> float:
    return float(f"{float(x):.6g}")


def regression_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> RegressionMetrics:
    """MAE, RMSE, R² and the largest absolute error."""
    if len(y_true) != len(y_pred) or not len(y_true):
        raise ValueError(f"need equally many labels and predictions, got {len(y_true)} and {len(y_pred)}")
    actual = np.asarray(y_true, dtype=np.float64)
    predicted = np.asarray(y_pred, dtype=np.float64)
    err = actual - predicted
    total = float(((actual - actual.mean()) ** 2).sum())
    sse = float((err ** 2).sum())
    values = {
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt(sse / len(err))),
        "r2": 1.0 - sse / total if total > 0 else (1.0 if sse == 0 else 0.0),
        "max_error": float(np.abs(err).max()),
    }
    return RegressionMetrics(values, actual, predicted)
