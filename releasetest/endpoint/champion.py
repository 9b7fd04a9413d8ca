"""The champion (production) release reached at its URL: ready when liveness answers."""

from __future__ import annotations

import os

from releasetest.endpoint.client import ScoringClient
from releasetest.endpoint.handle import EndpointHandle
from releasetest.endpoint.url import UrlEndpoint, handle_for_url
from releasetest.errors import DeployError, EndpointError
from releasetest.settings import DEFAULT_READY_TIMEOUT


class ChampionUrlEndpoint(UrlEndpoint):
    """Production, already running: its answers are what is measured, so readiness is liveness only
    (the candidate's golden labels are no test for another model)."""

    def __init__(self, url: str, key_env: str, ready_timeout_s: float = DEFAULT_READY_TIMEOUT):
        super().__init__(url, key_env, ([], []), ready_timeout_s)

    def deploy(self) -> EndpointHandle:
        handle = handle_for_url(self.url, os.environ.get(self.key_env) or None, target="champion",
                                key_env=self.key_env)
        with ScoringClient(handle, timeout=self.ready_timeout_s) as client:
            try:
                status = client.liveness().status_code
            except EndpointError as exc:
                raise DeployError(f"champion at {self.url} is not answering: {exc}") from None
        if status != 200:
            raise DeployError(f"champion at {self.url}: liveness answered {status}")
        self._handle = handle
        return handle

