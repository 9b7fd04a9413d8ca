"""Repository-level conftest: settings shared by this repo's own test runs.

Kept free of fixtures and ``pytest_plugins``: with an editable install the built-in suites are
collected from this repository's ``suites/``, so this file is also loaded by every release run
started here and must not change what those runs see.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# CI runs are reproducible: derandomized, bounded, no deadline flakiness on a loaded 2-core box.
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=50,
                          suppress_health_check=[HealthCheck.too_slow])
if os.environ.get("CI"):
    settings.load_profile("ci")
