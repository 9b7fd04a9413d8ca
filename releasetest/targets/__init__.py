"""Deploy targets. Each yields an :class:`~releasetest.targets.base.Endpoint` the suites use."""

from __future__ import annotations

from .base import Endpoint, EndpointHandle

__all__ = ["Endpoint", "EndpointHandle"]
