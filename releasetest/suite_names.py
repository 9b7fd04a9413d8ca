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
}
SUITES: tuple[str, ...] = tuple(SUITE_MARKERS)

#: Tests carrying none of the suite markers: the user's own release tests.
OTHER = "other"
