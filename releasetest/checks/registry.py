"""The registry of suites: each built-in suite's name, marker help and manifest-table parser.

Each parser has the shape ``parse(table, release, stage) -> config`` and raises
:class:`~releasetest.errors.ConfigError` naming the manifest, key and fix. The run calls every
parser at load time; suites read their parsed config through the ``suite_config`` fixture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from releasetest.checks.acceptance import config as acceptance
from releasetest.checks.contract.config import parse_schema_config
from releasetest.checks.load.slo import parse_load
from releasetest.checks.smoke import parse_smoke
from releasetest.release.manifest import Release, Stage
from releasetest.suite_names import SUITE_MARKERS, SUITES

Parser = Callable[[dict[str, Any], Release, Stage], Any]


@dataclass(frozen=True)
class Suite:
    name: str
    marker_help: str
    parse: Parser

    @property
    def marker_line(self) -> str:
        """The ``markers`` ini line pytest shows in ``--markers``."""
        return f"{self.name}: {self.marker_help}"


_PARSERS: dict[str, Parser] = {
    "smoke": parse_smoke,
    "acceptance": acceptance.parse,
    "schema": parse_schema_config,
    "load": parse_load,
}

#: Every built-in suite, in report order.
REGISTRY: tuple[Suite, ...] = tuple(Suite(name, SUITE_MARKERS[name], _PARSERS[name]) for name in SUITES)


def parse_all(release: Release, stage: Stage) -> dict[str, Any]:
    return {s.name: s.parse(release.suite_tables.get(s.name, {}), release, stage) for s in REGISTRY}
