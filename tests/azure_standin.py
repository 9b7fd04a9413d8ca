"""A loopback stand-in of the Azure Resource Manager routes azure-ai-ml calls for online endpoints.

HTTPS on 127.0.0.1 with a certificate from a throwaway test CA (trustme); the real ``MLClient``
reaches it through a custom cloud whose ``resource_manager`` endpoint is this server. Only the
Microsoft.MachineLearningServices operations the target uses are implemented, shaped after the
public REST specification; everything else answers 404 naming the route, and every request is
recorded so tests can assert on what the SDK sent. Long-running operations answer 201/202 with an
``Azure-AsyncOperation`` URL that reports ``InProgress`` for ``in_progress_polls`` polls, then
``Succeeded`` (azure-ai-ml waits a fixed 5 s between polls, so tests keep that at 0 unless they
test the waiting itself).
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trustme
from azure.core.credentials import AccessToken

WS = r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)"  # noqa: E501


class StaticTokenCredential:
    """The public ``get_token`` protocol of azure-core credentials, returning a fixed token."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("standin-token", int(time.time()) + 3600)


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


@dataclass
class State:
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    deployments: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    operations: dict[str, int] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)


class AzureStandin:
    """Start with ``with AzureStandin() as arm:``; ``arm.cloud_kwargs`` go to ``MLClient``."""

    def __init__(self, in_progress_polls: int = 0) -> None:
        self.in_progress_polls = in_progress_polls
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        self.state = State()
        self.lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"standin": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    def ca_bundle(self, path: str) -> str:
        self.ca.cert_pem.write_to_path(path)
        return path

    @property
    def cloud_kwargs(self) -> dict[str, Any]:
        return {"cloud": "ReleasetestStandin", "cloud_metadata": {
            "azure_portal": self.url + "/", "resource_manager": self.url + "/",
            "active_directory": self.url + "/", "aml_resource_id": self.url + "/",
            "storage_endpoint": "standin.invalid", "registry_discovery_endpoint": self.url + "/"}}

    def requests(self, method: str | None = None, pattern: str = "") -> list[Recorded]:
        with self.lock:
            return [r for r in self.state.requests
                    if (method is None or r.method == method) and re.search(pattern, r.path)]

    def __enter__(self) -> AzureStandin:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


class _Handler(BaseHTTPRequestHandler):
    standin: AzureStandin
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the recorded requests are the log."""

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        st = self.standin
        with st.lock:
            st.state.requests.append(Recorded(self.command, parts.path, parse_qs(parts.query), body))
        for method, pattern, func in ROUTES:
            m = re.fullmatch(pattern, parts.path)
            if m and method == self.command:
                with st.lock:
                    status, out, headers = func(st, m, body)
                self._send(status, out, headers)
                return
        missing = f"stand-in has no route {self.command} {parts.path}"
        self._send(404, {"error": {"code": "NotFound", "message": missing}})

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _handle


Result = tuple[int, Any, dict[str, str] | None]


def _lro(st: AzureStandin, status: int, body: Any) -> Result:
    op = uuid.uuid4().hex
    st.state.operations[op] = 0
    url = f"{st.url}/operations/{op}?api-version=2023-10-01"
    return status, body, {"Azure-AsyncOperation": url, "Location": url, "Retry-After": "0"}


def _operation(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    op = m["op"]
    polls = st.state.operations.get(op)
    if polls is None:
        return 404, {"error": {"code": "NotFound", "message": f"no operation {op}"}}, None
    st.state.operations[op] = polls + 1
    return 200, {"status": "InProgress" if polls < st.in_progress_polls else "Succeeded"}, {"Retry-After": "0"}


def _workspace(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    rid = m.group(0)
    return 200, {"id": rid, "name": m["ws"], "location": "westeurope", "type":
                 "Microsoft.MachineLearningServices/workspaces",
                 "properties": {"workspaceId": str(uuid.UUID(int=1)), "discoveryUrl": st.url + "/discovery"}}, None


def _endpoint_put(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    name = m["ep"]
    host = st.url.replace("https://", "")
    resource = {"id": m.group(0), "name": name, "location": body.get("location", "westeurope"),
                "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
                "identity": {"type": "SystemAssigned"},
                "tags": body.get("tags", {}), "kind": body.get("kind"),
                "properties": {**body.get("properties", {}), "provisioningState": "Succeeded",
                               "scoringUri": f"https://{host}/score/{name}", "swaggerUri": f"https://{host}/swagger/{name}"}}
    st.state.endpoints[name] = resource
    return _lro(st, 201, resource)


def _endpoint_get(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    ep = st.state.endpoints.get(m["ep"])
    if ep is None:
        return 404, {"error": {"code": "UserError", "message": f"endpoint {m['ep']} not found"}}, None
    return 200, ep, None


def _endpoint_delete(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    if st.state.endpoints.pop(m["ep"], None) is None:
        return 204, None, None
    for key in [k for k in st.state.deployments if k[0] == m["ep"]]:
        del st.state.deployments[key]
    return _lro(st, 202, None)


def _list_keys(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    if m["ep"] not in st.state.endpoints:
        return 404, {"error": {"code": "UserError", "message": "endpoint not found"}}, None
    return 200, {"primaryKey": f"primary-{m['ep']}", "secondaryKey": f"secondary-{m['ep']}"}, None


ROUTES: list[tuple[str, str, Any]] = [
    ("GET", r"/operations/(?P<op>[0-9a-f]+)", _operation),
    ("GET", WS, _workspace),
    ("PUT", WS + r"/onlineEndpoints/(?P<ep>[^/]+)", _endpoint_put),
    ("GET", WS + r"/onlineEndpoints/(?P<ep>[^/]+)", _endpoint_get),
    ("DELETE", WS + r"/onlineEndpoints/(?P<ep>[^/]+)", _endpoint_delete),
    ("POST", WS + r"/onlineEndpoints/(?P<ep>[^/]+)/listKeys", _list_keys),
]
