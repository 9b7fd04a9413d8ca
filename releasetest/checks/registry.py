"""The registry of suites: each built-in suite's name, marker help, manifest-table parser,
findings type and what it prepares while the endpoint starts.

Each parser has the shape ``parse(table, release, stage) -> config`` and raises
:class:`~releasetest.errors.ConfigError` naming the manifest, key and fix. The run calls every
parser at load time; suites read their parsed config through the ``suite_config`` fixture.

Each findings type (:class:`~releasetest.checks.findings.SuiteFindings`) reads the suite's part of
a verdict and summarises it for the terminal, the report and the CI summary; a suite without one
(and a user's own suite) gets the base type, whose findings the report shows as they are.

A suite may name a preparer, ``prepare(config, release, stage, holdout) -> value``: work that needs
no endpoint, done while it starts (in the process that deployed); the suite reads the value from
``ReleaseRun.prepared`` and does the work itself when there is none.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from releasetest.checks.acceptance.findings import AcceptanceFindings
from releasetest.checks.contract.findings import SchemaFindings
from releasetest.checks.drift.findings import DriftFindings
from releasetest.checks.findings import SuiteFindings
from releasetest.checks.load.findings import LoadFindings
from releasetest.checks.shadow.findings import ShadowFindings
from releasetest.checks.smoke_findings import SmokeFindings
from releasetest.suite_names import SUITE_MARKERS, SUITES

if TYPE_CHECKING:
    from releasetest.release.data import Holdout
    from releasetest.release.manifest import Release, Stage


@dataclass(frozen=True)
class Suite:
    name: str
    marker_help: str
    #: ``module:function`` of the manifest-table parser, imported when a run parses: reading a
    #: verdict (history, report, CI summary) needs the findings types, not the checks' numpy and HTTP.
    parser: str
    findings: type[SuiteFindings]
    #: ``module:function`` of the preparer, or None.
    preparer: str | None = None

    @property
    def marker_line(self) -> str:
        """The ``markers`` ini line pytest shows in ``--markers``."""
        return f"{self.name}: {self.marker_help}"

    def parse(self, table: dict[str, Any], release: Release, stage: Stage) -> Any:
        module, function = self.parser.split(":")
        return getattr(importlib.import_module(module), function)(table, release, stage)

    def prepare(self, config: Any, release: Release, stage: Stage, holdout: Holdout) -> Any:
        assert self.preparer is not None, f"{self.name} prepares nothing (see preparers())"
        module, function = self.preparer.split(":")
        return getattr(importlib.import_module(module), function)(config, release, stage, holdout)


_PARSERS: dict[str, tuple[str, type[SuiteFindings]]] = {
    "smoke": ("releasetest.checks.smoke:parse_smoke", SmokeFindings),
    "acceptance": ("releasetest.checks.acceptance.config:parse", AcceptanceFindings),
    "schema": ("releasetest.checks.contract.config:parse_schema_config", SchemaFindings),
    "load": ("releasetest.checks.load.slo:parse_load", LoadFindings),
    "drift": ("releasetest.checks.drift.config:parse_drift", DriftFindings),
    "shadow": ("releasetest.checks.shadow.config:parse_shadow", ShadowFindings),
}

#: Every built-in suite, in report order.
_PREPARERS = {"schema": "releasetest.checks.contract.inputs:draw_ahead"}

REGISTRY: tuple[Suite, ...] = tuple(Suite(name, SUITE_MARKERS[name], *_PARSERS[name], _PREPARERS.get(name))
                                    for name in SUITES)
_BY_NAME = {s.name: s for s in REGISTRY}


def parse_all(release: Release, stage: Stage) -> dict[str, Any]:
    return {s.name: s.parse(release.suite_tables.get(s.name, {}), release, stage) for s in REGISTRY}


def preparers(suites: Iterable[str]) -> list[Suite]:
    """The named built-in suites that prepare something while the endpoint starts."""
    return [_BY_NAME[name] for name in suites if name in _BY_NAME and _BY_NAME[name].preparer is not None]


def findings_type(suite: str) -> type[SuiteFindings]:
    """The findings type of a suite; the base type for a suite that is not built in."""
    return _BY_NAME[suite].findings if suite in _BY_NAME else SuiteFindings


def findings_of(verdict: Mapping[str, Any]) -> dict[str, SuiteFindings]:
    """Each suite's findings in a verdict, typed by its suite (any suite that recorded some)."""
    recorded = verdict.get("findings")
    return {name: findings_type(name).from_json(data)
            for name, data in (recorded.items() if isinstance(recorded, Mapping) else ())}


def evidence(findings: Mapping[str, Any], suites: Iterable[str]) -> dict[str, str]:
    """Why each of ``suites`` has no evidence for a pass, by suite (left out when it has): asked of
    the suite's findings type (:meth:`~releasetest.checks.findings.SuiteFindings.evidence`)."""
    found = {name: findings_type(name).from_json(findings.get(name)).evidence() for name in suites}
    return {name: problem for name, problem in found.items() if problem}


#: The key figures' units by label, in the history strip's order (accuracy, RMSE, p99, req/s).
FIGURE_UNITS: dict[str, str] = {label: unit for s in REGISTRY for label, unit in s.findings.FIGURES}


def key_figures(verdict: Mapping[str, Any]) -> dict[str, float]:
    """The key figures a verdict has, by label, in :data:`FIGURE_UNITS` order: the history strip's
    and ``releasetest history``'s columns."""
    found = {k: v for f in findings_of(verdict).values() for k, v in f.key_figures().items()}
    return {label: found[label] for label in FIGURE_UNITS if label in found}


def decision_lines(verdict: Mapping[str, Any]) -> list[str]:
    """Every suite's lines beside the decision (:meth:`~releasetest.checks.findings.SuiteFindings.decision_lines`),
    in the verdict's suite order."""
    return [line for found in findings_of(verdict).values() for line in found.decision_lines()]


def findings_warnings(findings: Mapping[str, Any]) -> list[str]:
    """What the recorded findings (by suite, in their JSON form) add to the verdict's warnings."""
    return [w for name, data in findings.items() for w in findings_type(name).from_json(data).warnings()]
