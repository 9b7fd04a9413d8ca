"""Latency figures from raw per-request timings, recorded in an HdrHistogram.

The load generator stores only timestamps while it runs (cheap); everything here happens after
the run, so the hot loop never pays for histogram bookkeeping. Latency is measured from each
request's *intended* start (open model) so a stalled server cannot hide its stall behind a
generator that stopped sending (coordinated omission, as wrk2 and HdrHistogram describe it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from releasetest.checks.load.findings import LoadFindings

#: Histogram range, microseconds: 1 us to one hour, 3 significant digits (0.1% resolution).
LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_FIGURES = 3

#: Percentiles reported, with the key each one has in the findings.
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p99_9", 99.9))

#: Largest number of points in the latency timeline finding (the report plots it).
TIMELINE_POINTS = 2000

#: Status key for a request that got no HTTP answer (refused, reset, closed early).
CONNECTION_ERROR = "connection_error"


class LatencyRecorder:
    """Thin wrapper over ``hdrh``: milliseconds in, percentiles in milliseconds out."""

    def __init__(self) -> None:
        self.hist = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)

    def record_ms(self, latency_ms: float) -> None:
        us = min(HIGHEST_US, max(LOWEST_US, int(round(latency_ms * 1000.0))))
        self.hist.record_value(us)

    @property
    def count(self) -> int:
        return int(self.hist.get_total_count())

    def percentile_ms(self, pct: float) -> float:
        return self.hist.get_value_at_percentile(pct) / 1000.0 if self.count else 0.0

    def summary(self) -> dict[str, float]:
        """p50 ... p99_9 and max, in ms, rounded to the histogram's resolution."""
        out = {name: round(self.percentile_ms(p), 3) for name, p in PERCENTILES}
        out["max"] = round(self.hist.get_max_value() / 1000.0, 3) if self.count else 0.0
        return out


@dataclass
class LoadResult:
    """What one load run measured, in the findings' vocabulary (see the brief's load conventions)."""

    mode: str
    target_rps: float | None
    measured_s: float
    requests: int
    latency_ms: dict[str, float]
    achieved_rps: float
    errors: dict[str, int]
    timeouts: int
    timeline: list[list[float]]
    concurrency: int
    engine: str = "builtin"
    #: Latency of the same requests measured from when they were actually sent (service time):
    #: what a closed-model tool would report. Shown beside the corrected figures.
    service_ms: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(self.errors.values()) + self.timeouts

    @property
    def error_rate(self) -> float:
        return self.failed / self.requests if self.requests else 0.0

    def brief(self) -> str:
        """The figures of a progress line."""
        p99 = self.latency_ms.get("p99")
        return (f"{self.requests} requests measured, {self.achieved_rps:.1f} req/s, "
                f"p99 {'-' if p99 is None else f'{p99:.1f}'} ms, {self.failed} errors")

    def findings(self) -> LoadFindings:
        return LoadFindings(
            latency_ms=self.latency_ms, achieved_rps=round(self.achieved_rps, 2), target_rps=self.target_rps,
            errors=self.errors, timeouts=self.timeouts, timeline=self.timeline, requests=self.requests,
            error_rate=round(self.error_rate, 6), mode=self.mode, engine=self.engine, concurrency=self.concurrency,
            measured_s=round(self.measured_s, 3), service_ms=self.service_ms, notes=self.notes)


def timeline(points: Sequence[tuple[float, float]], max_points: int = TIMELINE_POINTS) -> list[list[float]]:
    """``[[t_s, latency_ms]]`` with at most ``max_points`` points: the slowest request of each
    time bucket, so a stall stays visible however many requests were sent."""
    if len(points) <= max_points:
        return [[round(t, 4), round(v, 3)] for t, v in sorted(points)]
    t0 = min(t for t, _ in points)
    span = max(t for t, _ in points) - t0 or 1.0
    worst: dict[int, tuple[float, float]] = {}
    for t, v in points:
        b = min(max_points - 1, int((t - t0) / span * max_points))
        if b not in worst or v > worst[b][1]:
            worst[b] = (t, v)
    return [[round(t, 4), round(v, 3)] for t, v in (worst[b] for b in sorted(worst))]


def summarize(
    *,
    mode: str,
    intended: Sequence[float],
    sent: Sequence[float],
    done: Sequence[float],
    status: Sequence[int],
    warmup_s: float,
    end_s: float,
    concurrency: int,
    target_rps: float | None,
    timeout_status: int = -1,
    conn_error_status: int = 0,
) -> LoadResult:
    """Figures for the requests whose intended start fell in ``[warmup_s, end_s)``.

    All times are seconds on one clock, relative to the run's start. ``intended[i]`` is when
    request ``i`` was due (open model) or sent (closed model), ``sent[i]`` when it went out
    (``nan`` if never), ``done[i]`` when its answer (or its timeout) arrived, ``status[i]`` the
    HTTP status, ``timeout_status`` for a timeout, ``conn_error_status`` for no answer. Timed-out
    requests are recorded at the time they had waited, so the tail is a lower bound and never
    simply missing. Achieved rate counts every HTTP answer completed inside the window (whenever
    its request was due), so a backlog drained during the window counts as throughput.
    """
    lat, svc = LatencyRecorder(), LatencyRecorder()
    errors: dict[str, int] = {}
    timeouts = completed_in_window = 0
    points: list[tuple[float, float]] = []
    n = 0
    for i, t in enumerate(intended):
        if t < warmup_s or t >= end_s or math.isnan(done[i]):
            continue
        n += 1
        ms = (done[i] - t) * 1000.0
        lat.record_ms(ms)
        points.append((t, ms))
        if not math.isnan(sent[i]):
            svc.record_ms((done[i] - sent[i]) * 1000.0)
        code = status[i]
        if code == timeout_status:
            timeouts += 1
            continue
        if code == conn_error_status:
            errors[CONNECTION_ERROR] = errors.get(CONNECTION_ERROR, 0) + 1
        elif not 200 <= code < 300:
            errors[str(code)] = errors.get(str(code), 0) + 1
    for i, d in enumerate(done):
        if warmup_s <= d < end_s and status[i] not in (timeout_status, conn_error_status):
            completed_in_window += 1
    window = max(end_s - warmup_s, 1e-9)
    return LoadResult(
        mode=mode, target_rps=target_rps, measured_s=window, requests=n, latency_ms=lat.summary(),
        achieved_rps=completed_in_window / window, errors=dict(sorted(errors.items())), timeouts=timeouts,
        timeline=timeline(points), concurrency=concurrency, service_ms=svc.summary())
