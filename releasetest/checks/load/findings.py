"""The load suite's findings: latency percentiles, rates, errors, the SLO decisions, the timeline,
memory growth and capacity, with their summaries."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from releasetest.checks.findings import SuiteFindings
from releasetest.verdict.formatting import fmt, num

#: Percentiles shown in the CI summary's suite line.
CI_PERCENTILES = ("p50", "p95", "p99")


def _number(value: Any) -> float | None:
    """A finite number as recorded (an int stays an int), None for anything else."""
    return value if num(value) is not None else None


@dataclass(frozen=True)
class SloRecord:
    """One SLO decision as the verdict records it (``slo`` list)."""

    name: str
    bound: float | None
    value: float | None
    passed: bool

    @classmethod
    def from_json(cls, data: Any) -> SloRecord:
        d = data if isinstance(data, dict) else {}
        return cls(str(d.get("name", "?")), _number(d.get("bound")), _number(d.get("value")), d.get("passed") is True)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoadFindings(SuiteFindings):
    #: Percentiles (``p50`` ... ``p99_9``, ``max``) from each request's intended send time.
    latency_ms: dict[str, float] | None = None
    achieved_rps: float | None = None
    target_rps: float | None = None
    #: Error responses by status.
    errors: dict[str, int] | None = None
    timeouts: int | None = None
    #: ``[[t_s, latency_ms]]``: every request, or the slowest of each time bucket.
    timeline: list[list[float]] | None = None
    requests: int | None = None
    error_rate: float | None = None
    mode: str | None = None
    engine: str | None = None
    concurrency: int | None = None
    measured_s: float | None = None
    #: Percentiles of the server's own time (from sending to the answer), beside ``latency_ms``.
    service_ms: dict[str, float] | None = None
    notes: list[str] | None = None
    slo: list[SloRecord] | None = None
    slo_derivation: str | None = None
    #: Resident memory growth of the server's process group over the load window.
    memory: dict[str, Any] | None = None
    capacity_rps: float | None = None
    capacity_steps: list[dict[str, Any]] | None = None

    FIGURES: ClassVar[tuple[tuple[str, str], ...]] = (("p99", " ms"), ("req/s", ""))
    SHOWN: ClassVar[frozenset[str]] = frozenset({
        "latency_ms", "achieved_rps", "target_rps", "errors", "timeouts", "slo", "timeline", "capacity_rps",
        "slo_derivation", "requests", "service_ms"})

    @classmethod
    def _load(cls, key: str, value: Any) -> Any:
        if key == "slo":
            return [SloRecord.from_json(s) for s in value if isinstance(s, dict)] if isinstance(value, list) else None
        if key == "latency_ms":
            return value if isinstance(value, dict) else None
        return value

    def key_figures(self) -> dict[str, float]:
        found = {"p99": num((self.latency_ms or {}).get("p99")), "req/s": num(self.achieved_rps)}
        return {k: v for k, v in found.items() if v is not None}

    def ci_line(self) -> str:
        lat = self.latency_ms or {}
        parts = [f"{p} {fmt(lat[p])} ms" for p in CI_PERCENTILES if p in lat]
        if self.achieved_rps is not None:
            parts.append(f"{fmt(self.achieved_rps)} req/s")
        return "; ".join(parts)

    def ci_properties(self) -> dict[str, str]:
        props = {f"latency_ms.{p}": fmt(v) for p, v in (self.latency_ms or {}).items()}
        props |= {k: fmt(v) for k, v in (("achieved_rps", self.achieved_rps), ("capacity_rps", self.capacity_rps))
                  if v is not None}
        return props

    def timeline_bound(self) -> tuple[str, float] | None:
        """The tail SLO (p95 or p99) drawn across the latency charts."""
        for s in self.slo or []:
            if s.bound is not None and "p9" in s.name:
                return s.name, s.bound
        return None

    def report_section(self) -> dict[str, Any]:
        # The chart kit is imported here, not at the top: reading findings (history) needs no SVG.
        from releasetest.verdict import charts

        bound = self.timeline_bound()
        section: dict[str, Any] = {"plots": {"percentiles": charts.percentile_curve(
            self.latency_ms, "latency by percentile", bound)}}
        pts = charts.points(self.timeline)
        if pts:
            section["plots"]["histogram"] = charts.histogram([v for _, v in pts], "latency histogram", "ms")
            section["plots"]["timeline"] = charts.timeline(self.timeline, "latency over time", bound)
            section["histogram_of"] = (f"all {len(pts)} requests" if self.requests == len(pts) else
                                       f"the {len(pts)} timeline points (the slowest request of each time bucket)")
        return section
