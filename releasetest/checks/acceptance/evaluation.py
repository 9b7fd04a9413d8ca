"""Acceptance decisions: the candidate's metrics against the naive baselines, the champion and the
thresholds, and training-serving parity. No pytest: the suite does fixtures and assertions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from releasetest.checks.acceptance.config import AcceptanceConfig, Threshold
from releasetest.checks.acceptance.scoring import BatchScores
from releasetest.checks.metrics import Metrics, class_distribution, classification_metrics
from releasetest.errors import EndpointError
from releasetest.release.data import Holdout

#: Mismatching rows named in the verdict (the first ones, in holdout order).
SHOWN_MISMATCHES = 10


def majority_baseline(labels: Sequence[Any], classes: Sequence[Any]) -> tuple[list[Any], np.ndarray]:
    """Always the holdout's most frequent class (the strictest constant baseline); constant scores."""
    counts = [sum(1 for x in labels if x == c) for c in classes]
    top = classes[int(np.argmax(counts))]
    return [top] * len(labels), np.tile(_one_hot(top, classes), (len(labels), 1))


def persistence_baseline(holdout: Holdout, feature: str, classes: Sequence[Any]) -> tuple[list[Any], np.ndarray]:
    """"The future equals the present": the label is the value of ``feature`` in the same row."""
    column = holdout.rows[:, holdout.features.index(feature)]
    preds: list[Any] = []
    for v in column:
        match = [c for c in classes if isinstance(c, (int, float)) and float(c) == v]
        if not match:
            raise ValueError(f"persistence feature {feature} has value {v:g}, which is not one of the classes "
                             f"{list(classes)}")
        preds.append(match[0])
    return preds, np.asarray([_one_hot(p, classes) for p in preds])


def _one_hot(value: Any, classes: Sequence[Any]) -> list[float]:
    return [1.0 if c == value else 0.0 for c in classes]


@dataclass(frozen=True)
class ThresholdResult:
    threshold: Threshold
    value: float | None
    reference_value: float | None
    bound: float | None
    passed: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        t = self.threshold
        return {"metric": t.metric, "kind": t.kind, "bound": self.bound, "value": self.value,
                "reference": t.reference, "reference_value": self.reference_value, "margin": t.margin,
                "passed": self.passed, "message": self.message}


def _f(x: float) -> str:
    return f"{x:.4f}"


def check_threshold(t: Threshold, metrics: dict[str, float],
                    references: dict[str, dict[str, float]], missing: dict[str, str]) -> ThresholdResult:
    """One threshold against the candidate's metrics; the message says what was needed and why."""
    value = metrics.get(t.metric)
    if value is None:
        why = "the endpoint returns no probabilities" if t.metric == "roc_auc" else "not computed"
        return ThresholdResult(t, None, None, None, False, f"{t.metric} is not available: {why}")
    if t.kind == "min":
        ok = value >= t.margin
        text = f"{t.metric} {_f(value)} " + ("meets" if ok else "is below") + f" the minimum {_f(t.margin)}"
        return ThresholdResult(t, value, None, t.margin, ok, text)
    assert t.reference is not None
    ref = references.get(t.reference, {}).get(t.metric)
    if ref is None:
        why = missing.get(t.reference, f"{t.reference} has no {t.metric}")
        return ThresholdResult(t, value, None, None, False, f"{t.metric} vs {t.reference}: not compared ({why})")
    if t.kind == "min_absolute_change":
        bound, amount = ref + t.margin, _f(abs(t.margin))
    else:
        bound, amount = ref + t.margin * abs(ref), f"{abs(t.margin):.2%}"
    ok = value >= bound
    name = "champion" if t.reference == "champion" else f"{t.reference} baseline"
    if t.margin >= 0:
        verb = "beats" if ok else "does not beat"
        text = f"{t.metric} {_f(value)} {verb} {name} {_f(ref)} by margin {amount}"
    else:
        verb = "stays within" if ok else "regresses beyond"
        text = f"{t.metric} {_f(value)} {verb} tolerance {amount} of {name} {_f(ref)}"
    return ThresholdResult(t, value, ref, bound, ok, f"{text} (needs >= {_f(bound)})")


def parity_check(predictions: Sequence[Any], holdout: Holdout, required: float,
                 shown: int = SHOWN_MISMATCHES) -> dict[str, Any]:
    """Endpoint predictions vs the ones recorded at training time, naming the first mismatches."""
    assert holdout.expected is not None
    bad = [i for i, (got, exp) in enumerate(zip(predictions, holdout.expected, strict=True)) if got != exp]
    agreement = 1 - len(bad) / len(predictions)
    mismatches = [{"row": i, "inputs": dict(zip(holdout.features, holdout.rows[i].tolist(), strict=True)),
                   "expected": holdout.expected[i], "got": predictions[i]} for i in bad[:shown]]
    return {"agreement": agreement, "required": required, "mismatching_rows": len(bad),
            "mismatches": mismatches, "passed": agreement >= required}


@dataclass
class Evaluation:
    """The candidate, its references and every decision, as the verdict records them."""

    config: AcceptanceConfig
    candidate: Metrics
    scores: BatchScores
    references: dict[str, Metrics]
    reference_errors: dict[str, str]
    thresholds: list[ThresholdResult]
    parity: dict[str, Any] | None
    holdout_distribution: dict[str, float]
    notes: list[str] = field(default_factory=list)

    def failed(self, references: Sequence[str | None]) -> list[ThresholdResult]:
        return [r for r in self.thresholds if r.threshold.reference in references and not r.passed]

    def findings(self) -> dict[str, Any]:
        return {
            "metrics": self.candidate.values,
            "thresholds": [r.as_dict() for r in self.thresholds],
            "references": {name: m.values for name, m in self.references.items()},
            "reference_errors": self.reference_errors,
            "confusion_matrix": self.candidate.confusion_dict(),
            "class_distribution": {"predicted": self.candidate.distribution, "holdout": self.holdout_distribution},
            "scoring": {"rows": len(self.scores.predictions), "requests": self.scores.requests,
                        "seconds": round(self.scores.seconds, 3), "rows_per_s": round(self.scores.rows_per_s, 1),
                        **self.config.describe()},
        } | ({"parity": self.parity} if self.parity is not None else {}) \
          | ({"curves": self.candidate.curves} if self.candidate.curves else {})


def evaluate(config: AcceptanceConfig, holdout: Holdout, classes: Sequence[Any], candidate: BatchScores,
             champion: BatchScores | None = None, champion_error: str | None = None) -> Evaluation:
    """Metrics of the candidate and of every reference on the same holdout, and every threshold."""
    classes = tuple(classes)
    unknown = sorted({repr(p) for p in candidate.predictions if p not in classes})
    if unknown:
        raise EndpointError(f"the endpoint returned labels outside the release's classes {list(classes)}: "
                            + ", ".join(unknown[:5]))
    probs = candidate.probabilities
    notes = []
    if probs is not None and probs.shape != (len(holdout), len(classes)):
        notes.append(f"probabilities have shape {probs.shape}, not ({len(holdout)}, {len(classes)}): ROC AUC skipped")
        probs = None
    metrics = classification_metrics(holdout.labels, candidate.predictions, classes, probs)
    refs: dict[str, Metrics] = {}
    errors: dict[str, str] = {}
    preds, scores = majority_baseline(holdout.labels, classes)
    refs["majority"] = classification_metrics(holdout.labels, preds, classes, scores)
    if config.persistence_feature:
        try:
            preds, scores = persistence_baseline(holdout, config.persistence_feature, classes)
            refs["persistence"] = classification_metrics(holdout.labels, preds, classes, scores)
        except ValueError as exc:
            errors["persistence"] = str(exc)
    if champion is not None:
        cp = champion.probabilities
        if cp is not None and cp.shape != (len(holdout), len(classes)):
            cp = None
        refs["champion"] = classification_metrics(holdout.labels, champion.predictions, classes, cp)
    elif config.champion is not None:
        errors["champion"] = champion_error or "champion not scored"
    ref_values = {name: m.values for name, m in refs.items()}
    results = [check_threshold(t, metrics.values, ref_values, errors) for t in config.thresholds]
    parity = parity_check(candidate.predictions, holdout, config.parity) if holdout.expected is not None else None
    return Evaluation(config, metrics, candidate, refs, errors, results, parity,
                      class_distribution(holdout.labels, classes), notes)


def constant_prediction(predictions: Sequence[Any]) -> Any | None:
    """The one class predicted for every row, or None when predictions vary."""
    first = predictions[0] if predictions else None
    return first if predictions and all(p == first for p in predictions) else None

