"""The acceptance suite's findings: metrics, threshold decisions, references, the comparison with
production and what the task plots (confusion matrix and curves, or predicted against actual),
with their summaries.

The comparison's records (:class:`ProductionComparison` and its parts) are declared here, not
beside the statistics in :mod:`~releasetest.checks.acceptance.paired`: reading a verdict (history,
report) needs them, and must not import numpy and scipy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from releasetest.checks.findings import Cause, SuiteFindings, test_causes
from releasetest.verdict.formatting import fmt, num


@dataclass(frozen=True)
class PairedTest:
    """A paired test's result: which test, its statistic and p-value, and the rows that moved."""

    name: str
    statistic: float | None
    p_value: float
    worse: int
    better: int


@dataclass(frozen=True)
class MetricDelta:
    """Candidate minus production, with a 95% interval when the rows are paired."""

    metric: str
    production: float
    candidate: float
    delta: float
    low: float | None = None
    high: float | None = None

    def describe(self) -> str:
        text = f"{self.metric} {self.candidate:.4f} vs {self.production:.4f} ({self.delta:+.4f}"
        if self.low is not None and self.high is not None:
            text += f", 95% CI {self.low:+.4f} to {self.high:+.4f}"
        return text + ")"


def p_text(p_value: float) -> str:
    """A p-value as messages show it; one below the smallest double reads as a bound, not 0."""
    return f"p = {p_value:.3g}" if p_value > 0 else "p < 1e-300"


@dataclass(frozen=True)
class ProductionComparison:
    """The candidate against the production release: what the verdict, report and terminal show."""

    production: str
    production_id: str
    how: str
    task: str
    metric: str
    #: True when both scored the same holdout (same digest) and the test ran.
    paired: bool
    candidate_holdout: str
    production_holdout: str | None
    rows: int
    p_threshold: float
    tolerance: float
    regressed: bool
    message: str
    test: PairedTest | None = None
    #: How much worse the deciding metric is, relative to production's value (negative: better).
    drop: float | None = None
    deltas: tuple[MetricDelta, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProductionComparison:
        """The verdict's form back; keys this version does not know are ignored."""
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        values["test"] = PairedTest(**values["test"]) if values.get("test") else None
        values["deltas"] = tuple(MetricDelta(**d) for d in values.get("deltas") or ())
        return cls(**values)

    @property
    def deciding(self) -> MetricDelta | None:
        return next((d for d in self.deltas if d.metric == self.metric), None)

    def headline(self) -> str:
        """One line with what a reviewer acts on (production, metric, rows worse and better, the
        p-value), short enough for a test's failure line; :attr:`message` has the intervals."""
        d, t = self.deciding, self.test
        if not self.regressed or d is None or t is None or self.drop is None:
            return self.message
        return (f"regression against production {self.production}: {self.metric} {d.candidate:.4f} vs "
                f"{d.production:.4f} ({self.drop:.1%} worse, tolerated {self.tolerance:.1%}); {t.worse} rows "
                f"got worse, {t.better} better; {t.name.split(',')[0]} {p_text(t.p_value)} < {self.p_threshold:g}")

    def line(self) -> str:
        """The comparison in one line beside the decision (report banner, terminal, CI summary,
        history): production, the deciding metric from production's value to this release's, the
        rows that moved and the test's p-value, and what it means for the gate."""
        d, t = self.deciding, self.test
        head = f"against production {self.production}: "
        if d is None:
            return head + f"not compared ({self._unpaired_why()}, and production's verdict records no {self.metric})"
        change = f"{self.metric} {d.production:.4f} -> {d.candidate:.4f}"
        if self.drop is not None and self.drop != 0:
            change += f" ({abs(self.drop):.1%} {'worse' if self.drop > 0 else 'better'})"
        if not self.paired or t is None:
            outcome = (f"warning, beyond the tolerated {self.tolerance:.1%}" if self.warning() is not None else "ok")
            return head + f"{change}, metrics only ({self._unpaired_why()}): {outcome}"
        moved = f"{t.worse} rows worse, {t.better} better, {t.name.split()[0]} {p_text(t.p_value)}" \
            if t.worse + t.better else "no row changed"
        if self.regressed:
            outcome = f"BLOCK (below {self.p_threshold:g}, beyond the tolerated {self.tolerance:.1%})"
        elif t.worse + t.better == 0 or self.drop is None or self.drop <= 0:
            outcome = "ok"
        elif t.p_value >= self.p_threshold:
            outcome = f"ok (not significant at {self.p_threshold:g})"
        else:
            outcome = f"ok (within the tolerated {self.tolerance:.1%})"
        return head + f"{change}, {moved}: {outcome}"

    def _unpaired_why(self) -> str:
        return "another holdout" if self.production_holdout is not None else "no readable predictions of it kept"

    def warning(self) -> str | None:
        """A metrics-only comparison (nothing to pair) whose deciding metric dropped beyond the
        tolerance: no test can BLOCK on it, so the verdict warns; None otherwise."""
        if self.paired or self.drop is None or self.drop <= self.tolerance:
            return None
        return self.message

    def decides_on(self) -> str:
        """Which metrics the comparison decides on, and by which test, for the report."""
        if not self.paired:
            return (f"metrics only: {self.metric}'s drop beyond the tolerated {self.tolerance:.1%} is a warning, "
                    "never a BLOCK (no rows to pair, so no test)")
        if self.task == "regression":
            return "decides on MAE (Wilcoxon signed-rank test on each row's absolute error)"
        return ("decides on accuracy (McNemar's test) and on balanced accuracy, the default threshold's metric "
                "(McNemar stratified by class): a regression in either BLOCKs")

    def status(self) -> str:
        """regressed, not significant, metrics only (another holdout or nothing kept), or not worse."""
        if self.regressed:
            return "regressed"
        if not self.paired:
            return "metrics only"
        return "no regression"


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
    #: The comparison with the production release from history (no champion configured).
    production: ProductionComparison | None = None

    FIGURES: ClassVar[tuple[tuple[str, str], ...]] = (("accuracy", ""), ("RMSE", ""))
    SHOWN: ClassVar[frozenset[str]] = frozenset({
        "metrics", "thresholds", "references", "reference_errors", "confusion_matrix", "parity",
        "class_distribution", "curves", "task", "predicted_vs_actual", "residuals", "production"})

    @classmethod
    def _load(cls, key: str, value: Any) -> Any:
        if key == "thresholds":
            return [ThresholdRecord.from_json(t) for t in value if isinstance(t, dict)] \
                if isinstance(value, list) else None
        if key in ("metrics", "references", "reference_errors"):
            return value if isinstance(value, dict) else None
        if key == "production":
            try:
                return ProductionComparison.from_json(value) if isinstance(value, Mapping) else None
            except (TypeError, ValueError):
                return None
        return value

    def _metric(self, name: str) -> float | None:
        return num((self.metrics or {}).get(name)) if isinstance(self.metrics, dict) else None

    def key_figures(self) -> dict[str, float]:
        found = {"accuracy": self._metric("accuracy"), "RMSE": self._metric("rmse")}
        return {k: v for k, v in found.items() if v is not None}

    def decision_lines(self) -> list[str]:
        return [self.production.line()] if self.production is not None else []

    def warnings(self) -> list[str]:
        found = self.production.warning() if self.production is not None else None
        return [found] if found else []

    def evidence(self) -> str | None:
        if not self.metrics:
            return "recorded no evidence (no metrics: the holdout was not scored through the endpoint)"
        failed = [f"{t.metric} {t.kind or 'bound'} {fmt(t.bound)} failed (got {fmt(t.value)})"
                  for t in self.thresholds or [] if t.passed is not True]
        if isinstance(self.parity, dict) and self.parity.get("passed") is False:
            failed.append(f"parity {fmt(self.parity.get('agreement'))} below {fmt(self.parity.get('required'))}")
        return f"recorded evidence that contradicts its passed tests: {'; '.join(failed)}" if failed else None

    def ci_line(self) -> str:
        parts = [f"{t.metric} {fmt(t.value)} ({t.kind or 'bound'} {fmt(t.bound)}) {'✅' if t.passed else '❌'}"
                 for t in self.thresholds or []]
        line = "; ".join(parts or [f"{k} {fmt(v)}" for k, v in (self.metrics or {}).items()])
        p = self.production
        if p is not None:
            d = p.deciding
            delta = f" {p.metric} {d.delta:+.4f}" if d is not None else ""
            test = f", {p_text(p.test.p_value)}" if p.paired and p.test is not None else ""
            line += f"; vs production {p.production}:{delta}{test} ({p.status()}) {'❌' if p.regressed else '✅'}"
        return line

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
        if self.production is not None:
            plots["production"] = self._production_chart(charts)
        errors = self.reference_errors
        return {"plots": plots, "thresholds": rows, "production": self._production_view(),
                "reference_errors": [f"{k}: {v}" for k, v in errors.items()] if isinstance(errors, dict) else [],
                "distribution": self._distribution(), "references": self._reference_table()}

    #: The tests whose failures :meth:`causes` explains from the findings (the rest keep their message).
    EXPLAINED: ClassVar[frozenset[str]] = frozenset({
        "test_training_serving_parity", "test_absolute_minimums", "test_beats_naive_baselines",
        "test_no_regression_against_champion", "test_no_regression_against_production"})

    def causes(self, suite: str, result: Any) -> list[Cause]:
        """Parity, each failed threshold (what it lost to and by how much) and a regression against
        production, from the findings; any other failing test with its message."""
        found: list[Cause] = []
        parity = self.parity if isinstance(self.parity, dict) else {}
        if parity.get("passed") is False:
            found.append(Cause(_parity_line(parity), "the served model differs from the one that wrote "
                               "expected_predictions: check that the pinned model files are the ones train.py "
                               "saved, that score.py prepares the features as training did, and regenerate "
                               "expected_predictions with the model you ship", "test_training_serving_parity"))
        for t in self.thresholds or []:
            if t.passed is not True and (value := num(t.value)) is not None and (bound := num(t.bound)) is not None:
                ref = t.compared_value if t.compared_value is not None else bound
                found.append(Cause(t.message or f"{t.metric} {fmt(value)} does not reach {fmt(bound)}",
                                   f"{t.metric} {fmt(value)} lost to the {t.against} {fmt(ref)} by "
                                   f"{fmt(abs(ref - value))} and needs {fmt(abs(bound - value))} more to pass: "
                                   "improve the model, or change this bound in [acceptance.thresholds] if it is wrong",
                                   "test_absolute_minimums" if t.reference is None else "test_beats_naive_baselines"))
        production = self.production
        if production is not None and production.regressed:
            found.append(Cause(str(production.message or "regression against production").splitlines()[0],
                               "keep the production release: this one is significantly worse on the same holdout "
                               "rows (the paired comparison is below); retrain and gate again",
                               "test_no_regression_against_production"))
        explained = self.EXPLAINED if found else frozenset()
        return found + test_causes(suite, result, explained)

    def _production_chart(self, charts: Any) -> Any:
        """The paired comparison at a glance: the rows that got worse (red) and better (green)
        than production, and the deciding metric of both releases."""
        p = self.production
        assert p is not None
        bars = []
        if p.test is not None:
            bars += [charts.Bar("rows worse than production", float(p.test.worse), passed=False),
                     charts.Bar("rows better than production", float(p.test.better), passed=True)]
        return charts.bar_chart(bars, f"rows that changed against production {p.production}")

    def _production_view(self) -> dict[str, Any] | None:
        """The comparison for the report's table: status, test, and each metric's delta."""
        p = self.production
        if p is None:
            return None
        rows = [[d.metric, f"{d.production:.4f}", f"{d.candidate:.4f}", f"{d.delta:+.4f}",
                 f"{d.low:+.4f} to {d.high:+.4f}" if d.low is not None and d.high is not None else "–"]
                for d in p.deltas]
        return {"status": p.status(), "regressed": p.regressed, "message": p.message, "how": p.how,
                "decides_on": p.decides_on(),
                "production": p.production, "paired": p.paired,
                "test": (f"{p.test.name}: {p_text(p.test.p_value)} (BLOCKs below {p.p_threshold:g} with a drop "
                         f"beyond {p.tolerance:.1%})") if p.test is not None else None,
                "deltas": {"columns": ["metric", "production", "this release", "change", "95% CI"], "rows": rows}}

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


def _parity_line(parity: dict[str, Any]) -> str:
    """``training-serving parity 0.998 < 0.999 required: 1 of 500 rows differ (worst: row 7 expected 0, got 1)``."""
    agreement, bad = num(parity.get("agreement")), parity.get("mismatching_rows")
    total = round(bad / (1 - agreement)) if isinstance(bad, int) and agreement is not None and agreement < 1 else None
    text = f"training-serving parity {fmt(agreement)} < {fmt(parity.get('required'))} required"
    if isinstance(bad, int):
        text += f": {bad}{f' of {total}' if total else ''} rows differ from expected_predictions"
    shown = parity.get("worst") or (parity.get("mismatches") or [None])[0]
    if isinstance(shown, dict):
        text += f" ({'worst' if parity.get('worst') else 'first'}: row {shown.get('row')} expected " \
                f"{fmt(shown.get('expected'))}, got {fmt(shown.get('got'))})"
    return text
