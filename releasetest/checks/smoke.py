"""The ``[smoke]`` manifest table and the memory-growth rule: how much the server's resident memory
may grow over a number of scoring requests, and which window measures it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from releasetest.checks.load.slo import LoadSpec
from releasetest.release.manifest import Release, Stage
from releasetest.tables import Key, Table, check


@dataclass(frozen=True)
class SmokeConfig:
    """Smoke settings: memory growth is measured over at least ``memory_requests`` requests."""

    memory_requests: int = 200
    max_rss_growth_mb: float = 64.0


SMOKE = Table({
    "memory_requests": Key("int", "fewest requests the memory check measures (smoke burst or load window)",
                           default=SmokeConfig.memory_requests, gt=0),
    "max_rss_growth_mb": Key("number", "most the server's memory may grow over that burst, in MB",
                             default=SmokeConfig.max_rss_growth_mb, gt=0),
})


def parse_smoke(table: dict[str, Any], release: Release, stage: Stage) -> SmokeConfig:
    """Check ``[smoke]``; a bad value is a ConfigError naming the key and the fix."""
    values = check(table, SMOKE, release.manifest, "smoke.")
    return SmokeConfig(memory_requests=values["memory_requests"],
                       max_rss_growth_mb=float(values["max_rss_growth_mb"]))


def memory_in_load_window(smoke: SmokeConfig, load: LoadSpec) -> bool:
    """True when the load window measures memory at least as strongly as the smoke burst would:
    the built-in generator (its warm-up is observable) sends >= ``memory_requests`` after warm-up.
    The load window's own traffic then replaces the burst and its cost."""
    return load.engine == "builtin" and load.measured_requests() >= smoke.memory_requests


def memory_growth_failure(before: int, after: int, requests: int, smoke: SmokeConfig) -> str | None:
    """The failure line when the server grew more than ``max_rss_growth_mb`` over ``requests``."""
    growth_mb = (after - before) / 2**20
    if growth_mb <= smoke.max_rss_growth_mb:
        return None
    return (f"server memory grew {growth_mb:.1f} MB over {requests} requests "
            f"(limit {smoke.max_rss_growth_mb} MB, [smoke] max_rss_growth_mb)")
