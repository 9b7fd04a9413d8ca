"""Per-suite manifest tables, parsed and checked before anything is deployed.

Each suite module owns its table's schema and exposes ``parse(table, release, stage) -> config``
that raises :class:`~releasetest.errors.ConfigError` naming the manifest, key and fix. The run
calls every parser in :data:`PARSERS` at load time; suites read their parsed config from
``ReleaseRun.suite_configs`` (the ``suite_config`` fixture).
"""


from __future__ import annotations

from collections.abc import Callable
from typing import Any

from releasetest.checks.acceptance import config as acceptance
from releasetest.checks.contract.config import parse_schema_config
from releasetest.checks.load.slo import parse_load
from releasetest.checks.smoke import parse_smoke
from releasetest.release.manifest import Release, Stage

Parser = Callable[[dict[str, Any], Release, Stage], Any]


#: suite name -> parser of its manifest table.
PARSERS: dict[str, Parser] = {
    "smoke": parse_smoke,
    "acceptance": acceptance.parse,
    "schema": parse_schema_config,
    "load": parse_load,
}


def parse_all(release: Release, stage: Stage) -> dict[str, Any]:
    return {name: parse(release.suite_tables.get(name, {}), release, stage) for name, parse in PARSERS.items()}

