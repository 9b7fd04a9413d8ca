"""Hooks other plugins and conftest files can implement to extend a release run."""

from __future__ import annotations

from typing import Any

import pytest

from releasetest.endpoint.handle import EndpointHandle


@pytest.hookspec
def pytest_releasetest_endpoint_ready(config: pytest.Config, handle: EndpointHandle) -> None:
    """The endpoint is deployed and answered its golden prediction.

    Called once, in the process that deployed it (the xdist controller, or the only process),
    e.g. to warm caches or to register the URL with a dashboard. If it raises, the deploy fails
    with that cause: every test that uses ``endpoint`` fails and the verdict BLOCKs.
    """


@pytest.hookspec
def pytest_releasetest_verdict(config: pytest.Config, verdict: dict[str, Any]) -> None:
    """The verdict is complete and about to be sealed and written; called once, by the controller.

    Implementations may add entries under ``verdict["findings"]`` or append to
    ``verdict["reasons"]``; to block, set ``verdict["decision"] = "BLOCK"`` and append a reason.
    A hook can only make the gate stricter: setting ``"PROMOTE"`` on a blocked run is ignored,
    and the gate's own reasons are kept (see :func:`releasetest.verdict.decision.settle`).
    """
