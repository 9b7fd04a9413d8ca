"""Repository-level conftest: settings shared by this repo's own test runs.

Kept free of fixtures and ``pytest_plugins``. A release run (``--release-stage``) loads no
conftest.py at all, this one included (see docs/design.md).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# CI runs are reproducible: derandomized, bounded, no deadline flakiness on a loaded 2-core box.
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=50,
                          suppress_health_check=[HealthCheck.too_slow])
if os.environ.get("CI"):
    settings.load_profile("ci")
