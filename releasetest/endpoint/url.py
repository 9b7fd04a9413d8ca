"""An endpoint that already exists (an Azure ML scoring URI, a Kubernetes service, ...).

Nothing is deployed or torn down; the run only checks it is ready and tests it. The key comes
from an environment variable so it never appears on a command line or in a file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from releasetest.endpoint.base import Endpoint
from releasetest.endpoint.client import wait_ready
from releasetest.endpoint.formats import WireSpec
from releasetest.endpoint.handle import EndpointHandle
from releasetest.errors import ConfigError, DeployError, EndpointError, WrongAnswer
from releasetest.settings import DEFAULT_READY_TIMEOUT

#: Headers by which an endpoint names what answered; recorded whenever it sends them.
IDENTITY_HEADERS = ("azureml-model-deployment",)


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


#: How long an address where nothing accepts connections gets (a restarting pod, a front end
#: being swapped) before the run says so, instead of waiting out the readiness timeout.
UNREACHABLE_S = 3.0


class UrlEndpoint(Endpoint):
    """An endpoint someone else deployed: ready when it answers liveness and the golden rows as the
    release recorded them, and, for each of ``expect_headers``, sends that header with that value."""

    target = "url"

    def __init__(self, url: str, key_env: str, golden: tuple[list[list[float]], list[Any]],
                 ready_timeout_s: float = DEFAULT_READY_TIMEOUT, wire: WireSpec | None = None,
                 expect_headers: Mapping[str, str] | None = None, diagnose: Callable[[], str | None] | None = None):
        self.url = url
        self.diagnose = diagnose
        self.wire = wire
        self.key_env = key_env
        self.golden = golden
        self.ready_timeout_s = ready_timeout_s
        self.expect_headers = {k.lower(): v for k, v in (expect_headers or {}).items()}
        self._handle: EndpointHandle | None = None

    @property
    def handle(self) -> EndpointHandle | None:
        return self._handle

    def deploy(self) -> EndpointHandle:
        key = os.environ.get(self.key_env) or None
        handle = handle_for_url(self.url, key, key_env=self.key_env)
        try:
            ready = wait_ready(handle, *self.golden, deadline_s=self.ready_timeout_s, still_starting=_pause,
                               spec=self.wire, unreachable_s=min(UNREACHABLE_S, self.ready_timeout_s),
                               diagnose=self.diagnose)
        except WrongAnswer as exc:
            raise DeployError(str(exc), answered=True) from None
        except EndpointError as exc:
            raise DeployError(f"endpoint at {self.url} is not ready: {exc}") from None
        answer = ready.golden
        for name, want in self.expect_headers.items():
            got = answer.headers.get(name)
            if got is None:
                raise DeployError(f"endpoint at {self.url}: the golden answer has no {name} header (expected {want!r})")
            if got != want:
                raise DeployError(f"endpoint at {self.url}: the golden answer's {name} header is {got!r}, "
                                  f"expected {want!r}")
        shown = {k: answer.headers[k] for k in (*IDENTITY_HEADERS, *self.expect_headers) if k in answer.headers}
        self._handle = replace(handle, info={**handle.info, "wire": ready.wire.as_dict(), "verified": {
            "liveness": 200, "golden_rows": len(self.golden[0]), "headers": shown}})
        return self._handle

    def teardown(self) -> None:
        """Someone else owns this endpoint: leave it running."""


def _pause(wait_s: float) -> bool:
    """A remote endpoint has no process to watch: just wait between polls."""
    time.sleep(wait_s)
    return True
