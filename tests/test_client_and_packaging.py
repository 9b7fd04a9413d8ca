"""The scoring client against a real (minimal) HTTP server, and the installed environment."""

from __future__ import annotations

import http.server
import subprocess
import sys
from collections.abc import Iterator

import pytest

from releasetest.endpoint.client import ScoringClient
from releasetest.endpoint.handle import EndpointHandle
from releasetest.errors import EndpointError

from .conftest import loopback_server


class _AzureFrontEndRefusing(http.server.BaseHTTPRequestHandler):
    """Answers /score the way Azure ML's front end refuses a request to a deployment not ready."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"message": "upstream not ready"}'
        self.send_response(502)
        self.send_header("Content-Type", "application/json")
        self.send_header("x-ms-request-id", "req-123")
        self.send_header("ms-azureml-model-error-reason", "model_not_ready")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing_server() -> Iterator[str]:
    with loopback_server(_AzureFrontEndRefusing) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"


def test_error_reason_header_is_in_the_failure(refusing_server: str) -> None:
    handle = EndpointHandle(target="url", scoring_uri=f"{refusing_server}/score", liveness_uri=f"{refusing_server}/",
                            swagger_uri=f"{refusing_server}/swagger.json")
    with ScoringClient(handle, timeout=10) as client, pytest.raises(EndpointError) as info:
        client.score([[1.0] * 7])
    text = str(info.value)
    assert "answered 502 (request id req-123, ms-azureml-model-error-reason: model_not_ready)" in text
    assert client.last_headers["ms-azureml-model-error-reason"] == "model_not_ready"


def test_installed_requirements_are_consistent() -> None:
    """With the test extra (which includes azureml and locust) pip finds no broken requirement:
    the opentelemetry pin in the azureml extra keeps azure-ai-ml and the inference server together."""
    out = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


class _ForwardProxy(http.server.BaseHTTPRequestHandler):
    """A forward proxy that answers every request itself and records the absolute URL it was asked for."""

    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("no_proxy", [None, "127.0.0.1"])
def test_client_honours_the_proxy_environment(refusing_server: str, no_proxy: str | None,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The client reads the proxy settings once, as requests would per request: through the proxy,
    unless NO_PROXY names the endpoint's host."""
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    handle = EndpointHandle(target="url", scoring_uri=f"{refusing_server}/score", liveness_uri=f"{refusing_server}/",
                            swagger_uri=f"{refusing_server}/swagger.json")
    _ForwardProxy.seen = []
    with loopback_server(_ForwardProxy) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
        if no_proxy:
            monkeypatch.setenv("NO_PROXY", no_proxy)
        with ScoringClient(handle, timeout=10) as client:
            status = client.liveness().status_code
    if no_proxy:
        assert _ForwardProxy.seen == [] and status == 501, "straight to the endpoint, which has no GET"
    else:
        assert _ForwardProxy.seen == [f"{refusing_server}/"] and status == 200
