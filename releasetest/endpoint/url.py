"""An endpoint that already exists (an Azure ML scoring URI, a Kubernetes service, ...).

Nothing is deployed or torn down; the run only checks it is ready and tests it. The key comes
from an environment variable so it never appears on a command line or in a file.
"""

from __future__ import annotations

import os
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from releasetest.endpoint.base import Endpoint
from releasetest.endpoint.client import wait_ready
from releasetest.endpoint.handle import EndpointHandle
from releasetest.errors import ConfigError, DeployError, EndpointError


def handle_for_url(url: str, key: str | None, target: str = "url", **info: Any) -> EndpointHandle:
    """Scoring, liveness and swagger addresses from a scoring URI (``.../score``) or a base URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(None, "release_url", f"not an http(s) URL: {url!r}",
                          "pass the scoring URI, e.g. https://my-endpoint.westeurope.inference.ml.azure.com/score")
    path = parts.path.rstrip("/")
    base_path = path[: -len("/score")] if path.endswith("/score") else path
    base = urlunsplit((parts.scheme, parts.netloc, base_path, "", ""))
    return EndpointHandle(target=target, scoring_uri=f"{base}/score", liveness_uri=f"{base}/",
                          swagger_uri=f"{base}/swagger.json", key=key, info=dict(info))


class UrlEndpoint(Endpoint):
    target = "url"

    def __init__(self, url: str, key_env: str, golden: tuple[list[list[float]], list[Any]],
                 ready_timeout_s: float = 60.0):
        self.url = url
        self.key_env = key_env
        self.golden = golden
        self.ready_timeout_s = ready_timeout_s
        self._handle: EndpointHandle | None = None

    @property
    def handle(self) -> EndpointHandle | None:
        return self._handle

    def deploy(self) -> EndpointHandle:
        key = os.environ.get(self.key_env) or None
        handle = handle_for_url(self.url, key, key_env=self.key_env)
        try:
            wait_ready(handle, *self.golden, deadline_s=self.ready_timeout_s, still_starting=_pause)
        except EndpointError as exc:
            raise DeployError(f"endpoint at {self.url} is not ready: {exc}") from None
        self._handle = handle
        return handle

    def teardown(self) -> None:
        """Someone else owns this endpoint: leave it running."""


def _pause(wait_s: float) -> bool:
    """A remote endpoint has no process to watch: just wait between polls."""
    time.sleep(wait_s)
    return True
