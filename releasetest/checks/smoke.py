"""The ``[smoke]`` manifest table and the memory-growth rule: how much the server's resident memory
may grow over a number of scoring requests, and which window measures it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from releasetest.checks.load.slo import LoadSpec
from releasetest.release.manifest import Release, Stage


@dataclass(frozen=True)
class SmokeConfig:
    """Smoke settings: memory growth is measured over at least ``memory_requests`` requests."""

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
