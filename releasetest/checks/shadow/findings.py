"""The shadow suite's findings: what the candidate was compared with, how many answers changed
(overall, in its tail, per segment), the rows that changed most, both sides' error rates and
latency, and whether production still answers as it recorded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from releasetest.checks.findings import SuiteFindings
from releasetest.verdict.formatting import fmt


@dataclass
class ShadowFindings(SuiteFindings):
    #: What production's answers came from: recorded model_outputs, the champion URL or release.
    production_source: str | None = None
    task: str | None = None
    rows: int | None = None
    compared_rows: int | None = None
    changed_rows: int | None = None
    changed_share: float | None = None
    max_changed: float | None = None
    mean_abs_change: float | None = None
    max_mean_abs_change: float | None = None
    #: Quantiles of each row's change (|difference|, or the largest probability shift).
    change_quantiles: dict[str, float] | None = None
    segments: list[dict[str, Any]] | None = None
    most_changed: list[dict[str, Any]] | None = None
    candidate: dict[str, Any] | None = None
    production: dict[str, Any] | None = None
    #: Production's answers now against what it recorded for the same rows.
    recorded_check: dict[str, Any] | None = None

    SHOWN: ClassVar[frozenset[str]] = frozenset({
        "production_source", "task", "rows", "compared_rows", "changed_rows", "changed_share", "max_changed",
        "mean_abs_change", "max_mean_abs_change", "change_quantiles", "segments", "most_changed", "candidate",
        "production", "recorded_check"})

    def headline(self) -> str:
        if self.task == "regression":
            return (f"mean |change| {fmt(self.mean_abs_change)} over {fmt(self.compared_rows)} recorded rows "
                    f"against {self.production_source}")
        return (f"{fmt(self.changed_rows)} of {fmt(self.compared_rows)} recorded rows change label "
                f"({fmt(self.changed_share)}) against {self.production_source}")

    def terminal_lines(self) -> list[str]:
        return [f"shadow: {self.headline()}"] if self.compared_rows is not None else []

    def ci_line(self) -> str:
        return self.headline() if self.compared_rows is not None else ""

    def ci_properties(self) -> dict[str, str]:
        figures = (("changed_share", self.changed_share), ("mean_abs_change", self.mean_abs_change),
                   ("compared_rows", self.compared_rows))
        props = {k: fmt(v) for k, v in figures if v is not None}
        for side, data in (("candidate", self.candidate), ("production", self.production)):
            if isinstance(data, dict) and data.get("error_rate") is not None:
                props[f"{side}.error_rate"] = fmt(data["error_rate"])
        return props

    def report_section(self) -> dict[str, Any]:
        lines = [self.headline()] if self.compared_rows is not None else []
        if isinstance(self.recorded_check, dict):
            lines.append(f"production now against its recorded answers: {fmt(self.recorded_check.get('mismatches'))} "
                         f"of {fmt(self.recorded_check.get('rows'))} rows differ")
        tables = []
        sides = [(name, d) for name, d in (("candidate", self.candidate), ("production", self.production))
                 if isinstance(d, dict)]
        if sides:
            tables.append({"title": "Replayed requests", "columns": ["side", "answers from", "requests", "errors",
                                                                     "error rate", "p50 ms", "p95 ms", "p99 ms"],
                           "rows": [[name, d.get("source"), fmt(d.get("requests")), fmt(d.get("errors")),
                                     fmt(d.get("error_rate")), *(fmt((d.get("latency_ms") or {}).get(p))
                                                                 for p in ("p50", "p95", "p99"))]
                                    for name, d in sides]})
        if self.change_quantiles:
            tables.append({"title": "Distribution of changes", "columns": list(self.change_quantiles),
                           "rows": [[fmt(v) for v in self.change_quantiles.values()]]})
        if self.segments:
            tables.append({"title": f"By segment of {self.segments[0].get('feature')}",
                           "columns": ["segment", "rows", "changed share", "mean change", "bound", "result"],
                           "rows": [[s.get("segment"), fmt(s.get("rows")), fmt(s.get("changed_share")),
                                     fmt(s.get("mean_abs_change")), fmt(s.get("bound")),
                                     {True: "within", False: "beyond", None: "not gated"}[s.get("passed")]]
                                    for s in self.segments]})
        if self.most_changed:
            tables.append({"title": "Rows that changed most", "columns": ["recorded at", "production", "candidate",
                                                                          "change", "inputs"],
                           "rows": [[r.get("source"), fmt(r.get("production")), fmt(r.get("candidate")),
                                     fmt(r.get("change")), fmt(r.get("inputs"))] for r in self.most_changed]})
        return {"plots": {}, "lines": lines, "tables": tables}
