"""Acceptance decisions: the candidate's metrics against the naive baselines, the champion and the
thresholds, and training-serving parity. No pytest: the suite does fixtures and assertions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from releasetest.checks.acceptance.config import AcceptanceConfig, Threshold
from releasetest.checks.acceptance.findings import AcceptanceFindings, ThresholdRecord
from releasetest.checks.acceptance.scoring import BatchScores
from releasetest.checks.tasks import Scores, Task
from releasetest.endpoint.formats import Wire, integer_schema_cause
from releasetest.errors import EndpointError
from releasetest.release.data import Holdout

#: Mismatching rows named in the verdict (the first ones, in holdout order).
SHOWN_MISMATCHES = 10


@dataclass(frozen=True)
class ThresholdResult:
    threshold: Threshold
    value: float | None
    reference_value: float | None
    bound: float | None
    passed: bool
    message: str

    def record(self) -> ThresholdRecord:
        t = self.threshold
        return ThresholdRecord(t.metric, t.kind, self.bound, self.value, t.reference, self.reference_value, t.margin,
                               self.passed, self.message)


def _f(x: float) -> str:
    return f"{x:.4f}"


def check_threshold(t: Threshold, metrics: dict[str, float], references: dict[str, dict[str, float]],
                    missing: dict[str, str], lower_is_better: bool = False) -> ThresholdResult:
    """One threshold against the candidate's metrics; the message says what was needed and why.

    A change is an improvement in the metric's own direction: for an error (``lower_is_better``)
    the candidate must come in below the reference by the margin."""
    value = metrics.get(t.metric)
    if value is None:
        why = "the endpoint returns no probabilities" if t.metric == "roc_auc" else "not computed"
        return ThresholdResult(t, None, None, None, False, f"{t.metric} is not available: {why}")
    if t.kind == "min":
        ok = value >= t.margin
        text = f"{t.metric} {_f(value)} " + ("meets" if ok else "is below") + f" the minimum {_f(t.margin)}"
        return ThresholdResult(t, value, None, t.margin, ok, text)
    if t.kind == "max":
        ok = value <= t.margin
        text = f"{t.metric} {_f(value)} " + ("meets" if ok else "is above") + f" the maximum {_f(t.margin)}"
        return ThresholdResult(t, value, None, t.margin, ok, text)
    assert t.reference is not None
    ref = references.get(t.reference, {}).get(t.metric)
    if ref is None:
        why = missing.get(t.reference, f"{t.reference} has no {t.metric}")
        return ThresholdResult(t, value, None, None, False, f"{t.metric} vs {t.reference}: not compared ({why})")
    sign = -1.0 if lower_is_better else 1.0
    if t.kind == "min_absolute_change":
        bound, amount = ref + sign * t.margin, _f(abs(t.margin))
    else:
        bound, amount = ref + sign * t.margin * abs(ref), f"{abs(t.margin):.2%}"
    ok = value <= bound if lower_is_better else value >= bound
    name = "champion" if t.reference == "champion" else f"{t.reference} baseline"
    if t.margin >= 0:
        verb = "beats" if ok else "does not beat"
        text = f"{t.metric} {_f(value)} {verb} {name} {_f(ref)} by margin {amount}"
    else:
        verb = "stays within" if ok else "regresses beyond"
        text = f"{t.metric} {_f(value)} {verb} tolerance {amount} of {name} {_f(ref)}"
    return ThresholdResult(t, value, ref, bound, ok, f"{text} (needs {'<=' if lower_is_better else '>='} {_f(bound)})")


def parity_check(predictions: Sequence[Any], holdout: Holdout, required: float, task: Task,
                 shown: int = SHOWN_MISMATCHES) -> dict[str, Any]:
    """Endpoint predictions vs the ones recorded at training time (within the release's tolerance),
    naming the first mismatches and, for numbers, the worst row."""
    assert holdout.expected is not None
    bad = task.tolerance.mismatches(predictions, holdout.expected)
    agreement = 1 - len(bad) / len(predictions)

    def row(i: int) -> dict[str, Any]:
        return {"row": i, "inputs": dict(zip(holdout.features, holdout.rows[i].tolist(), strict=True)),
                "expected": holdout.expected[i], "got": predictions[i]}  # type: ignore[index]

    worst = task.worst(predictions, holdout.expected) if bad else None
    return {"agreement": agreement, "required": required, "tolerance": task.tolerance.describe(),
            "mismatching_rows": len(bad), "mismatches": [row(i) for i in bad[:shown]],
            "passed": agreement >= required} | ({"worst": row(worst)} if worst is not None else {})


def parity_cause(parity: dict[str, Any], holdout: Holdout, service_input: dict[str, Any] | None,
                 wire: Wire) -> str | None:
    """Why the shown mismatching rows differ, when the published input schema types them as integer
    (:func:`~releasetest.endpoint.formats.integer_schema_cause`): the golden rows may be whole numbers
    and pass while fractional holdout rows arrive cast."""
    shown = [*parity.get("mismatches", []), *([parity["worst"]] if "worst" in parity else [])]
    rows = [holdout.rows[m["row"]].tolist() for m in shown]
    return integer_schema_cause(service_input, wire, rows) if rows else None


@dataclass
class Evaluation:
    """The candidate, its references and every decision, as the verdict records them."""

    config: AcceptanceConfig
    candidate: Scores
    scores: BatchScores
    references: dict[str, Scores]
    reference_errors: dict[str, str]
    thresholds: list[ThresholdResult]
    parity: dict[str, Any] | None
    #: What the task records beside the values (confusion matrix, curves; regression points).
    details: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def failed(self, references: Sequence[str | None]) -> list[ThresholdResult]:
        return [r for r in self.thresholds if r.threshold.reference in references and not r.passed]

    def findings(self) -> AcceptanceFindings:
        return AcceptanceFindings(
            metrics=self.candidate.values,
            thresholds=[r.record() for r in self.thresholds],
            references={name: m.values for name, m in self.references.items()},
            reference_errors=self.reference_errors,
            parity=self.parity,
            scoring={"rows": len(self.scores.predictions), "requests": self.scores.requests,
                     "seconds": round(self.scores.seconds, 3), "rows_per_s": round(self.scores.rows_per_s, 1),
                     **self.config.describe()},
            **self.details,
        )


def evaluate(config: AcceptanceConfig, holdout: Holdout, candidate: BatchScores,
             champion: BatchScores | None = None, champion_error: str | None = None) -> Evaluation:
    """Metrics of the candidate and of every reference on the same holdout, and every threshold."""
    task = config.task
    invalid = task.invalid(candidate.predictions)
    if invalid:
        raise EndpointError(f"the endpoint returned {invalid}")
    probs, note = task.usable_probabilities(candidate.probabilities, len(holdout))
    metrics = task.metrics(holdout.labels, candidate.predictions, probs)
    refs: dict[str, Scores] = {}
    errors: dict[str, str] = {}
    for name in task.baselines:
        if name == "persistence" and not config.persistence_feature:
            continue
        try:
            refs[name] = task.baseline(name, holdout, config.persistence_feature)
        except ValueError as exc:
            errors[name] = str(exc)
    if champion is not None:
        cp, _ = task.usable_probabilities(champion.probabilities, len(holdout))
        refs["champion"] = task.metrics(holdout.labels, champion.predictions, cp)
    elif config.champion is not None:
        errors["champion"] = champion_error or "champion not scored"
    ref_values = {name: m.values for name, m in refs.items()}
    results = [check_threshold(t, metrics.values, ref_values, errors, task.lower_is_better(t.metric))
               for t in config.thresholds]
    parity = (parity_check(candidate.predictions, holdout, config.parity, task)
              if holdout.expected is not None else None)
    return Evaluation(config, metrics, candidate, refs, errors, results, parity,
                      task.findings(metrics, holdout.labels), [note] if note else [])
