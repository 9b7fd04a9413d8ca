"""The acceptance suite's findings: metrics, threshold decisions, references and what the task
plots (confusion matrix and curves, or predicted against actual), with their summaries."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from releasetest.checks.findings import SuiteFindings
from releasetest.verdict.formatting import fmt, num


@dataclass(frozen=True)
class ThresholdRecord:
    """One threshold decision as the verdict records it (``thresholds`` list)."""

    metric: str | None = None
    kind: str | None = None
    bound: float | None = None
    value: float | None = None
    #: None for an absolute minimum or maximum, else the baseline's name or ``champion``.
    reference: str | None = None
    reference_value: float | None = None
    margin: float | None = None
    passed: bool = False
    message: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> ThresholdRecord:
        d = data if isinstance(data, dict) else {}
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def against(self) -> str:
        """What the threshold compares against, in words: the minimum, a named baseline, the champion."""
        if self.reference is None or self.kind == "min":
            return "minimum"
        return "champion" if self.reference == "champion" else f"{self.reference} baseline"

    @property
    def compared_value(self) -> float | None:
        """The baseline's or champion's value the threshold compared with; None for a minimum."""
        return num(self.reference_value) if isinstance(self.reference, str) else num(self.reference)


@dataclass
class AcceptanceFindings(SuiteFindings):
    metrics: dict[str, Any] | None = None
    thresholds: list[ThresholdRecord] | None = None
    references: dict[str, dict[str, Any]] | None = None
    reference_errors: dict[str, str] | None = None
    #: Classification: ``{labels, matrix}``, ``{holdout, predicted}`` shares, ROC and PR points.
    confusion_matrix: dict[str, Any] | None = None
    class_distribution: dict[str, Any] | None = None
    curves: dict[str, Any] | None = None
    #: Regression: the task's name and its ``[actual, predicted]`` and ``[predicted, residual]`` points.
    task: str | None = None
    predicted_vs_actual: list[list[float]] | None = None
    residuals: list[list[float]] | None = None
    parity: dict[str, Any] | None = None
    scoring: dict[str, Any] | None = None

    FIGURES: ClassVar[tuple[tuple[str, str], ...]] = (("accuracy", ""), ("RMSE", ""))
    SHOWN: ClassVar[frozenset[str]] = frozenset({
        "metrics", "thresholds", "references", "reference_errors", "confusion_matrix", "parity",
        "class_distribution", "curves", "task", "predicted_vs_actual", "residuals"})

    @classmethod
    def _load(cls, key: str, value: Any) -> Any:
        if key == "thresholds":
            return [ThresholdRecord.from_json(t) for t in value if isinstance(t, dict)] \
                if isinstance(value, list) else None
        if key in ("metrics", "references", "reference_errors"):
            return value if isinstance(value, dict) else None
        return value

    def _metric(self, name: str) -> float | None:
        return num((self.metrics or {}).get(name)) if isinstance(self.metrics, dict) else None

    def key_figures(self) -> dict[str, float]:
        found = {"accuracy": self._metric("accuracy"), "RMSE": self._metric("rmse")}
        return {k: v for k, v in found.items() if v is not None}

    def ci_line(self) -> str:
        parts = [f"{t.metric} {fmt(t.value)} ({t.kind or 'bound'} {fmt(t.bound)}) {'✅' if t.passed else '❌'}"
                 for t in self.thresholds or []]
        return "; ".join(parts or [f"{k} {fmt(v)}" for k, v in (self.metrics or {}).items()])

    def ci_properties(self) -> dict[str, str]:
        return {name: fmt(value) for name, value in (self.metrics or {}).items()}

    def report_section(self) -> dict[str, Any]:
        # The chart kit is imported here, not at the top: reading findings (history) needs no SVG.
        from releasetest.verdict import charts

        thresholds = self.thresholds or []
        rows = [{**t.to_json(), "against": t.against, "reference_value": t.compared_value} for t in thresholds]
        bars = [charts.Bar(f"{t.metric or '?'} vs {t.against}", value, num(t.bound),
                           t.passed if isinstance(t.passed, bool) else None,
                           ((t.against, ref),) if (ref := t.compared_value) is not None else ())
                for t in thresholds if (value := num(t.value)) is not None]
        plots = {"thresholds": charts.bar_chart(bars, "metrics against thresholds"),
                 "metrics": charts.bar_chart(
                     [charts.Bar(str(name), v, markers=self._reference_markers(name))
                      for name, value in (self.metrics or {}).items() if (v := num(value)) is not None],
                     "metrics against references")}
        cm = self.confusion_matrix
        if isinstance(cm, dict):
            plots["confusion"] = charts.heatmap(list(cm.get("labels") or []), list(cm.get("matrix") or []),
                                                "confusion matrix")
        plots.update(charts.roc_plots(self.curves))
        if self.task == "regression":
            plots.update(charts.regression_plots(self.predicted_vs_actual, self.residuals))
        errors = self.reference_errors
        return {"plots": plots, "thresholds": rows,
                "reference_errors": [f"{k}: {v}" for k, v in errors.items()] if isinstance(errors, dict) else [],
                "distribution": self._distribution(), "references": self._reference_table()}

    def _reference_markers(self, metric: str) -> tuple[tuple[str, float], ...]:
        """Each reference's value of ``metric``: the hollow diamonds on its bar."""
        return tuple((ref, rv) for ref, vals in (self.references or {}).items() if isinstance(vals, dict)
                     and (rv := num(vals.get(metric))) is not None)

    def _distribution(self) -> dict[str, Any] | None:
        """Class distributions as one row per class; shares as percentages, counts as they are."""
        dist = self.class_distribution
        if not isinstance(dist, dict) or not all(isinstance(v, dict) for v in dist.values()):
            return None
        classes = list(dict.fromkeys(c for v in dist.values() for c in v))

        def cell(x: Any) -> str:
            n = num(x)
            return f"{n:.1%}" if n is not None and isinstance(x, float) and 0 <= n <= 1 else fmt(x)

        return {"columns": ["class", *dist], "rows": [[c, *(cell(v.get(c)) for v in dist.values())] for c in classes],
                "more": 0}

    def _reference_table(self) -> dict[str, Any] | None:
        refs = self.references
        if not isinstance(refs, dict) or not refs:
            return None
        names = list(dict.fromkeys(k for v in refs.values() if isinstance(v, dict) for k in v))
        rows = [["this release", *[fmt((self.metrics or {}).get(m)) for m in names]]]
        rows += [[str(r), *[fmt(v.get(m)) if isinstance(v, dict) else "–" for m in names]] for r, v in refs.items()]
        return {"columns": ["", *names], "rows": rows, "more": 0}
