"""Task kinds: what a release's model predicts decides its metrics, naive baselines, how a served
prediction is compared with the recorded one, and what "constant output" means.

Each kind is one class here; the acceptance, smoke and schema suites ask the release's
:class:`Task` (:func:`task_for`) instead of branching on the kind. The comparison of one
prediction with a recorded one is the manifest's :class:`~releasetest.release.manifest.Tolerance`
(the endpoint's readiness check uses it too, and imports nothing from here).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from releasetest.checks.metrics import (
    LOWER_IS_BETTER,
    REGRESSION_METRICS,
    Metrics,
    RegressionMetrics,
    class_distribution,
    classification_metrics,
    metric_names,
    regression_metrics,
)
from releasetest.release.data import Holdout
from releasetest.release.manifest import EXACT, DataSpec, Tolerance

#: A task's metrics on one set of predictions.
Scores = Metrics | RegressionMetrics


#: A regression's output is "constant" when it varies less than this share of the labels' spread.
CONSTANT_SPREAD = 1e-6


class Task(ABC):
    """One kind of model output, with everything the gate decides differently for it."""

    name: ClassVar[str]
    #: Naive baselines a threshold may compare against (besides ``champion``).
    baselines: ClassVar[tuple[str, ...]]
    #: Without ``[acceptance.thresholds]``: (metric, kind, margin, reference).
    default_threshold: ClassVar[tuple[str, str, float, str]]

    def __init__(self, tolerance: Tolerance) -> None:
        self.tolerance = tolerance

    @abstractmethod
    def metric_names(self) -> tuple[str, ...]:
        """Every metric a threshold may name."""

    def lower_is_better(self, metric: str) -> bool:
        return False

    @abstractmethod
    def metrics(self, labels: Sequence[Any], predictions: Sequence[Any],
                probabilities: np.ndarray | None = None) -> Scores:
        """The metrics of ``predictions`` against the true ``labels``."""

    @abstractmethod
    def baseline(self, name: str, holdout: Holdout, persistence_feature: str | None) -> Scores:
        """The metrics of naive baseline ``name``; ValueError when it cannot be formed on this holdout."""

    @abstractmethod
    def invalid(self, predictions: Sequence[Any]) -> str | None:
        """Why these answers cannot be predictions of this task (quoting a few), or None."""

    @abstractmethod
    def constant(self, predictions: Sequence[Any], labels: Sequence[Any], metrics: Scores) -> str | None:
        """Why the output does not depend on the input, or None when it varies."""

    def usable_probabilities(self, probabilities: np.ndarray | None, rows: int) -> tuple[np.ndarray | None, str | None]:
        """The probabilities metrics may use, and a note when some were returned but cannot be."""
        return None, None

    @abstractmethod
    def findings(self, candidate: Scores, labels: Sequence[Any]) -> dict[str, Any]:
        """What the verdict records beside the metric values (the report plots these)."""

    def agree(self, got: Any, expected: Any) -> bool:
        return self.tolerance.agree(got, expected)

    def worst(self, predictions: Sequence[Any], expected: Sequence[Any]) -> int | None:
        """The row furthest from its recorded prediction, when "furthest" means something."""
        return None


def constant_prediction(predictions: Sequence[Any]) -> Any | None:
    """The one value predicted for every row, or None when predictions vary."""
    first = predictions[0] if predictions else None
    return first if predictions and all(p == first for p in predictions) else None


def _one_hot(value: Any, classes: Sequence[Any]) -> list[float]:
    return [1.0 if c == value else 0.0 for c in classes]


def majority_baseline(labels: Sequence[Any], classes: Sequence[Any]) -> tuple[list[Any], np.ndarray]:
    """Always the holdout's most frequent class (the strictest constant baseline); constant scores."""
    counts = [sum(1 for x in labels if x == c) for c in classes]
    top = classes[int(np.argmax(counts))]
    return [top] * len(labels), np.tile(_one_hot(top, classes), (len(labels), 1))


def _persistence_column(holdout: Holdout, feature: str | None) -> np.ndarray:
    if feature is None:
        raise ValueError("acceptance.persistence_feature is not set")
    return holdout.rows[:, holdout.features.index(feature)]


def persistence_baseline(holdout: Holdout, feature: str | None, classes: Sequence[Any]) -> tuple[list[Any], np.ndarray]:
    """"The future equals the present": the label is the value of ``feature`` in the same row."""
    preds: list[Any] = []
    for v in _persistence_column(holdout, feature):
        match = [c for c in classes if isinstance(c, (int, float)) and float(c) == v]
        if not match:
            raise ValueError(f"persistence feature {feature} has value {v:g}, which is not one of the classes "
                             f"{list(classes)}")
        preds.append(match[0])
    return preds, np.asarray([_one_hot(p, classes) for p in preds])


class Classification(Task):
    """Class labels of any type (ints or strings), two classes or more; probabilities, when
    returned, come one column per class in the order of ``classes``."""

    name = "classification"
    baselines = ("majority", "persistence")
    default_threshold = ("balanced_accuracy", "min_absolute_change", 0.05, "majority")

    def __init__(self, classes: Sequence[Any], tolerance: Tolerance = EXACT) -> None:
        super().__init__(tolerance)
        self.classes = tuple(classes)

    def metric_names(self) -> tuple[str, ...]:
        return metric_names(self.classes)

    def metrics(self, labels: Sequence[Any], predictions: Sequence[Any],
                probabilities: np.ndarray | None = None) -> Metrics:
        return classification_metrics(labels, predictions, self.classes, probabilities)

    def baseline(self, name: str, holdout: Holdout, persistence_feature: str | None) -> Metrics:
        if name == "majority":
            preds, scores = majority_baseline(holdout.labels, self.classes)
        else:
            preds, scores = persistence_baseline(holdout, persistence_feature, self.classes)
        return self.metrics(holdout.labels, preds, scores)

    def invalid(self, predictions: Sequence[Any]) -> str | None:
        unknown = sorted({repr(p) for p in predictions if p not in self.classes})
        if unknown:
            return f"labels outside the release's classes {list(self.classes)}: " + ", ".join(unknown[:5])
        return None

    def constant(self, predictions: Sequence[Any], labels: Sequence[Any], metrics: Scores) -> str | None:
        only = constant_prediction(predictions)
        if only is None:
            return None
        share = class_distribution(labels, self.classes).get(str(only), 0.0)
        return (f"the model predicts class {only!r} for every one of the {len(predictions)} holdout rows "
                f"(its accuracy {metrics.values['accuracy']:.4f} is just that class's share {share:.4f})")

    def usable_probabilities(self, probabilities: np.ndarray | None, rows: int) -> tuple[np.ndarray | None, str | None]:
        if probabilities is None or probabilities.shape == (rows, len(self.classes)):
            return probabilities, None
        return None, (f"probabilities have shape {probabilities.shape}, not ({rows}, {len(self.classes)}): "
                      "ROC AUC skipped")

    def findings(self, candidate: Scores, labels: Sequence[Any]) -> dict[str, Any]:
        assert isinstance(candidate, Metrics)
        return {"confusion_matrix": candidate.confusion_dict(),
                "class_distribution": {"predicted": candidate.distribution,
                                       "holdout": class_distribution(labels, self.classes)},
                } | ({"curves": candidate.curves} if candidate.curves else {})


class Regression(Task):
    """Numbers; a served prediction matches the recorded one within ``[data] parity_tolerance``."""

    name = "regression"
    baselines = ("mean", "median", "persistence")
    default_threshold = ("rmse", "min_relative_change", 0.05, "mean")

    def metric_names(self) -> tuple[str, ...]:
        return REGRESSION_METRICS

    def lower_is_better(self, metric: str) -> bool:
        return metric in LOWER_IS_BETTER

    def metrics(self, labels: Sequence[Any], predictions: Sequence[Any],
                probabilities: np.ndarray | None = None) -> RegressionMetrics:
        return regression_metrics(labels, predictions)

    def baseline(self, name: str, holdout: Holdout, persistence_feature: str | None) -> RegressionMetrics:
        """``mean`` and ``median`` of the holdout's labels (DummyRegressor's strategies, fitted on
        the truth: the strictest constants), or the value of the persistence feature."""
        labels = np.asarray(holdout.labels, dtype=np.float64)
        if name == "persistence":
            preds = _persistence_column(holdout, persistence_feature)
        else:
            preds = np.full(len(labels), labels.mean() if name == "mean" else np.median(labels))
        return self.metrics(holdout.labels, preds.tolist())

    def invalid(self, predictions: Sequence[Any]) -> str | None:
        bad = [p for p in predictions
               if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p)]
        if bad:
            return f"{len(bad)} predictions are not finite numbers: " + ", ".join(map(repr, bad[:5]))
        return None

    def constant(self, predictions: Sequence[Any], labels: Sequence[Any], metrics: Scores) -> str | None:
        spread = float(np.std(np.asarray(predictions, dtype=np.float64)))
        truth = float(np.std(np.asarray(labels, dtype=np.float64)))
        if spread > CONSTANT_SPREAD * truth:
            return None
        return (f"the model predicts {float(np.mean(predictions)):.6g} for every one of the {len(predictions)} "
                f"holdout rows (standard deviation {spread:.3g}, the labels' {truth:.3g}): its output does not "
                "depend on the input")

    def findings(self, candidate: Scores, labels: Sequence[Any]) -> dict[str, Any]:
        assert isinstance(candidate, RegressionMetrics)
        pairs, residuals = candidate.points()
        return {"task": self.name, "predicted_vs_actual": pairs, "residuals": residuals}

    def worst(self, predictions: Sequence[Any], expected: Sequence[Any]) -> int | None:
        diff = np.abs(np.asarray(predictions, dtype=np.float64) - np.asarray(expected, dtype=np.float64))
        return int(np.argmax(diff)) if len(diff) else None


def task_for(spec: DataSpec) -> Task:
    """The task of a release's ``[data]`` table."""
    if spec.task == "regression":
        return Regression(spec.tolerance)
    return Classification(spec.classes, spec.tolerance)
