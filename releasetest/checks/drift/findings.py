"""The drift suite's findings: per feature the gating metric against its threshold for the holdout
and for the training reference against production, every metric under Azure ML's names, and the
three distributions side by side for the report's small multiples."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from releasetest.checks.findings import SuiteFindings
from releasetest.verdict.formatting import fmt


@dataclass(frozen=True)
class FeatureRecord:
    """One feature compared with production, as the verdict records it."""

    feature: str
    kind: str
    metric: str
    value: float
    threshold: float
    drifted: bool
    #: The metric is a p-value: drift is a value below the threshold.
    below: bool
    metrics: dict[str, float]
    n_reference: int
    n_production: int

    @classmethod
    def from_json(cls, data: Any) -> FeatureRecord:
        d = data if isinstance(data, dict) else {}
        return cls(str(d.get("feature", "?")), str(d.get("kind", "?")), str(d.get("metric", "?")),
                   float(d.get("value") or 0.0), float(d.get("threshold") or 0.0), d.get("drifted") is True,
                   d.get("below") is True, dict(d.get("metrics") or {}), int(d.get("n_reference") or 0),
                   int(d.get("n_production") or 0))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One line naming the feature, the metric, its value and the threshold."""
        op = ("<" if self.below else ">") if self.drifted else ("≥" if self.below else "≤")
        return f"{self.feature}: {self.metric} {self.value:.4g} {op} threshold {self.threshold:g}"


def _records(value: Any) -> list[FeatureRecord] | None:
    return [FeatureRecord.from_json(r) for r in value if isinstance(r, dict)] if isinstance(value, list) else None


@dataclass
class DriftFindings(SuiteFindings):
    #: The recorded traffic read: rows sampled, rows recorded, files, formats.
    production: dict[str, Any] | None = None
    reference: str | None = None
    stale_holdout: str | None = None
    far_from_training: str | None = None
    holdout_vs_production: list[FeatureRecord] | None = None
    training_vs_production: list[FeatureRecord] | None = None
    #: Per feature, most drifted first: ``bins`` and ``shares`` by sample (training, holdout, production).
    distributions: list[dict[str, Any]] | None = None
    #: Drift decisions set to warn that found drift: shown, not blocking.
    warned: list[str] | None = None

    SHOWN: ClassVar[frozenset[str]] = frozenset({
        "production", "reference", "stale_holdout", "far_from_training", "holdout_vs_production",
        "training_vs_production", "distributions", "warned"})

    @classmethod
    def _load(cls, key: str, value: Any) -> Any:
        if key in ("holdout_vs_production", "training_vs_production"):
            return _records(value)
        return value

    def drifted(self, which: str) -> list[FeatureRecord]:
        records = self.holdout_vs_production if which == "holdout" else self.training_vs_production
        return [r for r in records or [] if r.drifted]

    def terminal_lines(self) -> list[str]:
        return [f"drift warning: {w}" for w in self.warned or []]

    def ci_line(self) -> str:
        parts = []
        for which, records in (("holdout", self.holdout_vs_production), ("training", self.training_vs_production)):
            if records is not None:
                parts.append(f"{len(self.drifted(which))} of {len(records)} features drifted from {which}")
        return "; ".join(parts)

    def ci_properties(self) -> dict[str, str]:
        return {f"{which}.{r.feature}.{r.metric}": fmt(r.value)
                for which, records in (("holdout", self.holdout_vs_production),
                                       ("training", self.training_vs_production))
                for r in records or []}

    def report_section(self) -> dict[str, Any]:
        from releasetest.verdict import charts

        figures = []
        if self.distributions:
            figures.append({"title": "Distributions by feature, most drifted first",
                            "plot": charts.small_multiples(self.distributions),
                            "legend": "share of rows per bin: " + ", ".join(
                                f"{name} ({colour})" for name, colour in zip(charts.DISTRIBUTION_SERIES,
                                                                             ("blue", "orange", "purple"), strict=True))
                            + "; red title: drifted beyond its threshold"})
        tables = []
        for title, records in (("Holdout against production (stale holdout)", self.holdout_vs_production),
                               ("Training data against production", self.training_vs_production)):
            if records:
                tables.append({"title": title, "columns": ["feature", "kind", "metric", "value", "threshold",
                                                           "result", "all metrics"],
                               "rows": [[r.feature, r.kind, r.metric, fmt(r.value), fmt(r.threshold),
                                         "drifted" if r.drifted else "within",
                                         ", ".join(f"{k} {fmt(v)}" for k, v in r.metrics.items())]
                                        for r in records]})
        lines = [f"warning: {w}" for w in self.warned or []]
        if isinstance(self.production, dict):
            p = self.production
            lines.insert(0, f"production: {fmt(p.get('rows'))} rows sampled of {fmt(p.get('recorded_rows'))} "
                         f"recorded, from {fmt(p.get('files'))} files")
        return {"plots": {}, "lines": lines, "figures": figures, "tables": tables}
