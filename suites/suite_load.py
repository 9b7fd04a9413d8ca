"""Load: does the release hold its service level at the traffic production expects, and how much
can one instance take?

The profile and SLOs come from ``[load]`` of release.toml, with unstated values derived from the
stage's deployment config (:mod:`releasetest.checks.load.slo`); the figures are recorded whether the SLOs
hold or not, so the report shows the numbers behind every decision.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from releasetest.checks.load.findings import LoadFindings, SloRecord
from releasetest.checks.load.latency import LoadResult
from releasetest.checks.load.loadgen import Profile, request_bodies, run_load
from releasetest.checks.load.slo import LoadSpec, evaluate, failure_message, find_capacity
from releasetest.checks.smoke import SmokeConfig, memory_growth_failure, memory_in_load_window
from releasetest.endpoint.formats import wire_of
from releasetest.endpoint.handle import EndpointHandle
from releasetest.endpoint.process import group_rss_bytes
from releasetest.progress import Progress
from releasetest.release.data import Holdout
from releasetest.release.manifest import Release
from releasetest.run import ReleaseRun

pytestmark = pytest.mark.load


def _run(spec: LoadSpec, endpoint: EndpointHandle, holdout: Holdout, release: Release, workdir: Path,
         profile: Profile, progress: Progress, on_warm: Callable[[], None] | None = None) -> LoadResult:
    bodies = request_bodies(holdout.rows.tolist(), spec.rows_per_request, wire=wire_of(endpoint))
    if spec.engine == "locust":
        from releasetest.checks.load.locust_engine import run_locust

        return run_locust(workdir, endpoint.scoring_uri, endpoint.headers(), bodies, profile,
                          processes=spec.locust_processes, release=release.name, master=spec.master,
                          progress=progress)
    return run_load(endpoint.scoring_uri, endpoint.headers(), bodies, profile, on_warm, progress)


def test_slo_at_expected_rate(suite_config: LoadSpec, endpoint: EndpointHandle, holdout: Holdout,
                              release: Release, release_record: Callable[[str, Any], None],
                              release_workdir: Path, release_run: ReleaseRun) -> None:
    """The SLOs at the expected rate; the same window also measures the server's memory growth
    (resident memory of its process group after warm-up and at the end), which replaces the smoke
    suite's request burst when the window is at least as long (:func:`memory_in_load_window`)."""
    spec = suite_config
    smoke: SmokeConfig = release_run.suite_configs["smoke"]
    pid = endpoint.info.get("pid")
    watch = spec.engine == "builtin" and pid is not None and group_rss_bytes(pid) is not None
    warm: list[int] = []
    result = _run(spec, endpoint, holdout, release, release_workdir / "load", spec.profile(), release_run.progress,
                  on_warm=(lambda: warm.append(group_rss_bytes(pid) or 0)) if watch else None)
    problems = []
    findings = result.findings()
    if warm:
        end = group_rss_bytes(pid) or 0
        findings.memory = {"requests": result.requests, "rss_growth_mb": round((end - warm[0]) / 2**20, 1),
                           "max_rss_growth_mb": smoke.max_rss_growth_mb}
        if memory_in_load_window(smoke, spec):
            problems.append(memory_growth_failure(warm[0], end, result.requests, smoke))
    slos = evaluate(spec, result)
    findings.slo = [SloRecord.from_json(s) for s in slos]
    findings.slo_derivation = "\n".join(spec.derivation)
    findings.record(release_record)
    if not all(s["passed"] for s in slos):
        problems.insert(0, failure_message(slos, result, spec.refusal))
    failures = [p for p in problems if p]
    assert not failures, "\n".join(failures)


def test_capacity(suite_config: LoadSpec, endpoint: EndpointHandle, holdout: Holdout, release: Release,
                  release_record: Callable[[str, Any], None], release_workdir: Path,
                  release_run: ReleaseRun) -> None:
    spec = suite_config
    if not spec.capacity:
        pytest.skip("capacity mode is off (set capacity = true in [load] to find the highest rate that holds)")
    workdir = release_workdir / "load"
    capacity, steps = find_capacity(
        spec, lambda rate: _run(spec, endpoint, holdout, release, workdir,
                                spec.profile(rate=rate, duration_s=spec.capacity_step_s), release_run.progress))
    LoadFindings(capacity_rps=capacity, capacity_steps=steps).record(release_record)
    assert capacity is not None, (f"capacity: even the first step, {steps[0]['rate']:g} req/s, broke an SLO "
                                  f"(p99 {steps[0]['p99_ms']:g} ms, achieved {steps[0]['achieved_rps']:g} req/s)")
