"""The ``[smoke]`` manifest table: how much the server's memory may grow over a burst of requests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from releasetest.release.manifest import Release, Stage
from releasetest.tables import Key, Table, check


@dataclass(frozen=True)
class SmokeConfig:
    """Smoke settings: how much the server's memory may grow over a burst of requests."""

    memory_requests: int = 200
    max_rss_growth_mb: float = 64.0


SMOKE = Table({
    "memory_requests": Key("int", "requests in the memory check's burst", default=SmokeConfig.memory_requests,
                           gt=0),
    "max_rss_growth_mb": Key("number", "most the server's memory may grow over that burst, in MB",
                             default=SmokeConfig.max_rss_growth_mb, gt=0),
})


def parse_smoke(table: dict[str, Any], release: Release, stage: Stage) -> SmokeConfig:
    """Check ``[smoke]``; a bad value is a ConfigError naming the key and the fix."""
    values = check(table, SMOKE, release.manifest, "smoke.")
    return SmokeConfig(memory_requests=values["memory_requests"],
                       max_rss_growth_mb=float(values["max_rss_growth_mb"]))
