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

from releasetest.checks.load.latency import LoadResult
from releasetest.checks.load.loadgen import Profile, request_bodies, run_load
from releasetest.checks.load.slo import LoadSpec, evaluate, failure_message, find_capacity
from releasetest.endpoint.handle import EndpointHandle
from releasetest.release.data import Holdout
from releasetest.release.manifest import Release

pytestmark = pytest.mark.load


def _run(spec: LoadSpec, endpoint: EndpointHandle, holdout: Holdout, release: Release, workdir: Path,
         profile: Profile) -> LoadResult:
    bodies = request_bodies(holdout.rows.tolist(), spec.rows_per_request)
    if spec.engine == "locust":
        from releasetest.checks.load.locust_engine import run_locust

        return run_locust(workdir, endpoint.scoring_uri, endpoint.headers(), bodies, profile,
                          processes=spec.locust_processes, release=release.name)
    return run_load(endpoint.scoring_uri, endpoint.headers(), bodies, profile)


def test_slo_at_expected_rate(suite_config: LoadSpec, endpoint: EndpointHandle, holdout: Holdout,
                              release: Release, release_record: Callable[[str, Any], None],
                              release_workdir: Path) -> None:
    spec = suite_config
    result = _run(spec, endpoint, holdout, release, release_workdir / "load", spec.profile())
    slos = evaluate(spec, result)
    for key, value in result.findings().items():
        release_record(key, value)
    release_record("slo", slos)
    release_record("slo_derivation", "\n".join(spec.derivation))
    assert all(s["passed"] for s in slos), failure_message(slos, result)


def test_capacity(suite_config: LoadSpec, endpoint: EndpointHandle, holdout: Holdout, release: Release,
                  release_record: Callable[[str, Any], None], release_workdir: Path) -> None:
    spec = suite_config
    if not spec.capacity:
        pytest.skip("capacity mode is off (set capacity = true in [load] to find the highest rate that holds)")
    workdir = release_workdir / "load"
    capacity, steps = find_capacity(
        spec, lambda rate: _run(spec, endpoint, holdout, release, workdir,
                                spec.profile(rate=rate, duration_s=spec.capacity_step_s)))
    release_record("capacity_rps", capacity)
    release_record("capacity_steps", steps)
    assert capacity is not None, (f"capacity: even the first step, {steps[0]['rate']:g} req/s, broke an SLO "
                                  f"(p99 {steps[0]['p99_ms']:g} ms, achieved {steps[0]['achieved_rps']:g} req/s)")
