"""The built-in suites' names and marker help, in the order the gate and its report list them.

Plain data with no imports, so the manifest reader and the settings can name the suites without
importing the checks; :mod:`releasetest.checks.registry` adds each suite's config parser.
"""

from __future__ import annotations

#: suite name -> the marker's help line.
SUITE_MARKERS: dict[str, str] = {
    "smoke": "the endpoint is alive and answers its contract (releasetest suite)",
    "acceptance": "model quality through the endpoint against thresholds and baselines (releasetest suite)",
    "schema": "the endpoint honours its published input/output schema (releasetest suite)",
    "load": "latency and throughput at the expected traffic (releasetest suite)",
    "drift": "training data, holdout and recorded production inputs against drift thresholds (releasetest suite)",
    "shadow": "recorded production requests replayed through the candidate and production (releasetest suite)",
}
SUITES: tuple[str, ...] = tuple(SUITE_MARKERS)

#: Suites that judge recorded production traffic: required by default only when the release
#: configures ``[production] traffic`` (or ``--release-traffic``), else skipped with the reason.
PRODUCTION_SUITES: tuple[str, ...] = ("drift", "shadow")

#: Tests carrying none of the suite markers: the user's own release tests.
OTHER = "other"


def suites_selected(markexpr: str) -> frozenset[str] | None:
    """The suites an ``-m`` expression of plain suite names joined by ``or`` selects (``-m smoke``,
    ``-m "smoke or schema"``): the other suites' files need not even be imported. None for any
    other expression (``not``, ``and``, other markers), which pytest evaluates test by test."""
    names = markexpr.split()
    if not names or names[1::2] != ["or"] * (len(names) // 2) or len(names) % 2 == 0:
        return None
    suites = frozenset(names[::2])
    return suites if suites <= set(SUITES) else None
