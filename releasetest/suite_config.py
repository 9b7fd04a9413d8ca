"""Per-suite manifest tables, parsed and checked before anything is deployed.

Each suite module owns its table's schema and exposes ``parse(table, release, stage) -> config``
that raises :class:`~releasetest.errors.ConfigError` naming the manifest, key and fix. The run
calls every parser in :data:`PARSERS` at load time; suites read their parsed config from
``ReleaseRun.suite_configs`` (the ``suite_config`` fixture).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import acceptance
from .contract import parse_schema_config
from .slo import parse_load
from .spec import Release, Stage

Parser = Callable[[dict[str, Any], Release, Stage], Any]


@dataclass(frozen=True)
class SmokeConfig:
    """Smoke settings: how much the server's memory may grow over a burst of requests."""

    memory_requests: int = 200
    max_rss_growth_mb: float = 64.0


def _parse_smoke(table: dict[str, Any], release: Release, stage: Stage) -> SmokeConfig:
    from .errors import ConfigError

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


#: suite name -> parser of its manifest table.
PARSERS: dict[str, Parser] = {
    "smoke": _parse_smoke,
    "acceptance": acceptance.parse,
    "schema": parse_schema_config,
    "load": parse_load,
}


def parse_all(release: Release, stage: Stage) -> dict[str, Any]:
    return {name: parse(release.suite_tables.get(name, {}), release, stage) for name, parse in PARSERS.items()}
