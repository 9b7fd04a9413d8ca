"""The ``[smoke]`` manifest table: how much the server's memory may grow over a burst of requests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from releasetest.release.manifest import Release, Stage


@dataclass(frozen=True)
class SmokeConfig:
    """Smoke settings: how much the server's memory may grow over a burst of requests."""

    memory_requests: int = 200
    max_rss_growth_mb: float = 64.0


def parse_smoke(table: dict[str, Any], release: Release, stage: Stage) -> SmokeConfig:
    from releasetest.errors import ConfigError

    allowed = {"memory_requests", "max_rss_growth_mb"}
    for key, value in table.items():
        if key not in allowed:
            raise ConfigError(release.manifest, f"smoke.{key}", "unknown key",
                              "known keys: " + ", ".join(sorted(allowed)))
        whole = key == "memory_requests"
        if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)) or value <= 0:
            raise ConfigError(release.manifest, f"smoke.{key}", f"expected a positive number, got {value!r}",
                              f"e.g. {key} = {getattr(SmokeConfig, key)}")
    return SmokeConfig(**table)

