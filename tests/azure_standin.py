"""A loopback stand-in of the Azure endpoints azure-ai-ml calls to deploy an online endpoint.

HTTPS on 127.0.0.1 with a certificate from a throwaway test CA (trustme). Two ways in, both
public SDK knobs, no patching:

- in-process: ``MLClient(..., **standin.cloud_kwargs)`` (a custom cloud whose
  ``resource_manager`` is this server);
- another process (the ``pytest --release-target azureml`` run under test): the environment from
  :meth:`AzureStandin.client_env` — ``ARM_CLOUD_METADATA_URL`` + ``AZUREML_CURRENT_CLOUD`` (how
  the SDK finds sovereign clouds) pointing here, ``REQUESTS_CA_BUNDLE`` for the CA,
  ``AZURE_TOKEN_CREDENTIALS=AzureCliCredential`` with a fake ``az`` first on ``PATH`` (so
  ``DefaultAzureCredential`` gets a token without a network), and ``HTTPS_PROXY`` to a loopback
  CONNECT proxy that splices ``<account>.blob.core.standin.invalid`` (the SDK builds blob hostnames
  from the datastore's account name, which no resolver here maps to 127.0.0.1) to this server.

Only the Microsoft.MachineLearningServices operations the target uses are implemented, shaped
after the public REST specification (workspace, datastores, models, codes with pending upload,
environments, online endpoints and deployments with long-running operations, listKeys, getLogs),
plus the blob calls of an upload, and what reading a model from an Azure ML registry takes (registry
discovery, the registry's model version and its data reference, a SAS download of its blobs).
Anything else answers 404 naming the route; every request is
recorded so tests can assert on what the SDK sent. Long-running operations answer 201/202 with an
``Azure-AsyncOperation`` URL that reports ``InProgress`` for ``in_progress_polls`` polls, then
the outcome (azure-ai-ml waits a fixed 5 s between polls, so tests keep that at 0).

When a deployment is created, ``serve(endpoint, deployment_body)`` (given by the test) brings up
the scoring server — the tests start the real local endpoint — and its scoring URI becomes the
endpoint's; a failed start makes the deployment ``Failed`` and its log what ``getLogs`` returns.
A new deployment takes no traffic (as on Azure without ``--all-traffic``); an endpoint PUT sets
``traffic`` / ``mirrorTraffic``, checked like Azure does (known, provisioned deployments; live
traffic sums to 100 or 0).

With ``route=True`` the endpoint's scoring URI is the stand-in itself (``/endpoints/<name>/...``),
which routes like the Azure ML endpoint front end: to the deployment the
``azureml-model-deployment`` header names, else by the traffic split, and answers a scoring
request beyond what the deployment admits at once (2 x ``maxConcurrentRequestsPerInstance`` x
``sku.capacity``) 429 "Too many pending requests", counted in ``state.refused`` (``state.peak``:
the most it held at once). That is what blue/green
promotion needs: several deployments behind one endpoint. A request routed by the split is also
copied to each deployment in ``mirrorTraffic`` at its share (every ``100 / percent``-th request, so
tests know how many; Azure draws them at random) and the copy's answer is dropped, as Azure does.

Each request scored through the front end is written as the Azure ML data collector writes it to
the default datastore: ``modelDataCollector/<endpoint>/<deployment>/model_inputs|model_outputs/
<yyyy>/<MM>/<dd>/<HH>/<file>.jsonl`` blobs, one event per line with ``data``, ``time`` and
``correlationid`` (the caller's ``x-request-id`` when it sends one; a mirrored copy keeps the live
request's id); with ``collector`` (a folder) also below that folder, as a mount of it would show.
As an entry script that collects does, the input is written before the deployment scores it and the
output after it answered (none for a failed request), so the two events' times span ``run()``.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import select
import socket
import socketserver
import ssl
import stat
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import requests
import trustme
from azure.core.credentials import AccessToken

WS = r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)"  # noqa: E501
#: The workspace the tests' config.json names.
WS_PATH = ("/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.MachineLearningServices/workspaces/ws-1")
WORKSPACE_CONFIG = {"subscription_id": "sub-1", "resource_group": "rg-1", "workspace_name": "ws-1"}
CLOUD = "ReleasetestStandin"
#: Like core.windows.net: the storage SDK takes the account name from "<account>.blob.core.<...>".
STORAGE_SUFFIX = "core.standin.invalid"
ACCOUNT = "standinacct"
#: The storage account of every registry's assets, and the subscription and group discovery names.
REGISTRY_ACCOUNT = "standinregacct"
REGISTRY_SCOPE = ("sub-registry", "rg-registry")
CONTAINER = "azureml-blobstore"
#: A team's ``.amlignore`` for the example release: Azure ML uploads the release folder as the
#: deployment's code, and the entry script needs none of data/ (holdout, reference, recorded traffic:
#: what the gate reads where it runs). Uploaded, its ~290 files took 3.5 s per deployment here.
AMLIGNORE = "data/\n"


def in_workspace(release_dir: Path) -> None:
    """Make the example release one of the stand-in's workspace: ``aml_config/config.json`` naming
    it, and the ``.amlignore`` (:data:`AMLIGNORE`) that azure-ai-ml applies to the code upload."""
    (release_dir / "aml_config").mkdir()
    (release_dir / "aml_config" / "config.json").write_text(json.dumps(WORKSPACE_CONFIG))
    (release_dir / ".amlignore").write_text(AMLIGNORE)


class StaticTokenCredential:
    """The public ``get_token`` protocol of azure-core credentials, returning a fixed token."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("standin-token", int(time.time()) + 3600)


@dataclass
class Served:
    """What ``serve`` reports: the scoring URI (None when the server did not start), its log, a stop."""

    scoring_uri: str | None
    logs: str
    stop: Callable[[], None]


ServeFn = Callable[[str, dict[str, Any]], Served]


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    host: str = ""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class State:
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    deployments: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    served: dict[tuple[str, str], Served] = field(default_factory=dict)
    models: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    #: Models in Azure ML registries, by (registry, name, version).
    registry_models: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    assets: dict[str, dict[str, Any]] = field(default_factory=dict)
    blobs: dict[str, tuple[bytes, dict[str, str]]] = field(default_factory=dict)
    operations: dict[str, list[Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    #: Accumulated mirror share per (endpoint, deployment): a copy goes out each time it reaches 100.
    mirror_credit: dict[tuple[str, str], int] = field(default_factory=dict)
    #: Scoring requests the front end holds per (endpoint, deployment) now, the most it held at once,
    #: and how many it answered 429 because the deployment admitted no more.
    in_flight: dict[tuple[str, str], int] = field(default_factory=dict)
    peak: dict[tuple[str, str], int] = field(default_factory=dict)
    refused: dict[tuple[str, str], int] = field(default_factory=dict)


class AzureStandin:
    """Start with ``with AzureStandin(serve=...) as arm:``; ``arm.cloud_kwargs`` go to ``MLClient``."""

    def __init__(self, in_progress_polls: int = 0, serve: ServeFn | None = None, route: bool = False,
                 collector: Path | None = None) -> None:
        self.in_progress_polls = in_progress_polls
        self.serve = serve
        self.route = route
        self.collector = collector
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1", "localhost", f"*.blob.{STORAGE_SUFFIX}")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        self.state = State()
        self.lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"standin": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.proxy = _ConnectProxy(("127.0.0.1", 0), _Splice)
        self.proxy.upstream = self.server.server_address[:2]
        self.threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (self.server, self.proxy)]

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    @property
    def cloud(self) -> str:
        """The cloud's name, one per stand-in: azure-ai-ml keeps a cloud's endpoints process-wide
        by name, so a later stand-in (another port) in the same process must not share it."""
        return f"{CLOUD}{self.server.server_address[1]}"

    def ca_bundle(self, path: str) -> str:
        self.ca.cert_pem.write_to_path(path)
        return path

    @property
    def cloud_kwargs(self) -> dict[str, Any]:
        return {"cloud": self.cloud, "cloud_metadata": {
            "azure_portal": self.url + "/", "resource_manager": self.url + "/",
            "active_directory": self.url + "/", "aml_resource_id": self.url + "/",
            "storage_endpoint": STORAGE_SUFFIX, "registry_discovery_endpoint": self.url + "/"}}

    def client_env(self, workdir: Path) -> dict[str, str]:
        """Environment for a process whose ``MLClient(DefaultAzureCredential(), ...)`` should land here."""
        workdir.mkdir(parents=True, exist_ok=True)
        bin_dir = workdir / "fake-az-bin"
        bin_dir.mkdir(exist_ok=True)
        az = bin_dir / "az"
        az.write_text(f"#!{sys.executable}\n" + _FAKE_AZ)
        az.chmod(az.stat().st_mode | stat.S_IXUSR)
        return {
            "REQUESTS_CA_BUNDLE": self.ca_bundle(str(workdir / "standin-ca.pem")),
            "ARM_CLOUD_METADATA_URL": f"{self.url}/metadata/endpoints?api-version=2019-05-01",
            "AZUREML_CURRENT_CLOUD": self.cloud,
            "AZURE_TOKEN_CREDENTIALS": "AzureCliCredential",
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            # Where azure-ai-ml discovers a registry in a cloud it read from ARM_CLOUD_METADATA_URL.
            "REGISTRY_DISCOVERY_ENDPOINT_URL": self.url + "/",
            "HTTPS_PROXY": f"http://127.0.0.1:{self.proxy.server_address[1]}",
            "NO_PROXY": "127.0.0.1,localhost",
        }

    def register_model(self, name: str, version: str, tags: dict[str, str], ws: str = WS_PATH,
                       files: dict[str, bytes] | None = None) -> None:
        """A model someone registered before the run (as the workspace would return it); with
        ``files``, its blobs are in the default datastore under ``ModelRegistry/<name>/<version>/``
        as Azure keeps registered model files, so ``models.download`` fetches them."""
        folder = f"ModelRegistry/{name}/{version}"
        rid = f"{ws}/models/{name}/versions/{version}"
        resource = {"id": rid, "name": version, "type": "models",
                    "properties": {"flavors": {}, "tags": tags, "modelType": "custom_model",
                                   "modelUri": f"azureml://datastores/workspaceblobstore/paths/"
                                               f"{folder if files else 'elsewhere'}/",
                                   "provisioningState": "Succeeded"}}
        with self.lock:
            self.state.assets[rid] = resource
            self.state.models[(name, version)] = resource
            for file_name, data in (files or {}).items():
                self.state.blobs[f"/{CONTAINER}/{folder}/{file_name}"] = (data, {})

    def register_registry_model(self, registry: str, name: str, version: str, tags: dict[str, str],
                                files: dict[str, bytes]) -> None:
        """A model version published to the Azure ML registry ``registry``: its files are blobs of the
        registry's own storage account (``registry-<registry>`` container), read with a SAS."""
        folder = f"models/{name}/{version}"
        resource = {"id": f"azureml://registries/{registry}/models/{name}/versions/{version}", "name": version,
                    "type": "models",
                    "properties": {"flavors": {}, "tags": tags, "modelType": "custom_model",
                                   "modelUri": f"https://{REGISTRY_ACCOUNT}.blob.{STORAGE_SUFFIX}/"
                                               f"registry-{registry}/{folder}/",
                                   "provisioningState": "Succeeded"}}
        with self.lock:
            self.state.registry_models[(registry, name, version)] = resource
            for file_name, data in files.items():
                self.state.blobs[f"/registry-{registry}/{folder}/{file_name}"] = (data, {})

    def requests(self, method: str | None = None, pattern: str = "") -> list[Recorded]:
        with self.lock:
            return [r for r in self.state.requests
                    if (method is None or r.method == method) and re.search(pattern, r.path)]

    def __enter__(self) -> AzureStandin:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for served in list(self.state.served.values()):
            served.stop()
        self.state.served.clear()
        for s in (self.proxy, self.server):
            s.shutdown()
            s.server_close()
        for t in self.threads:
            t.join(timeout=10)


_FAKE_AZ = """import json, sys, time
# Stand-in for 'az account get-access-token --output json': what AzureCliCredential parses.
if sys.argv[1:3] != ["account", "get-access-token"]:
    sys.exit("fake az: only 'account get-access-token' is implemented")
print(json.dumps({"accessToken": "standin-token", "expires_on": int(time.time()) + 3600,
                  "tokenType": "Bearer", "subscription": "sub-1", "tenant": "tenant-1"}))
"""


class _ConnectProxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    upstream: tuple[str, int]


class _Splice(socketserver.StreamRequestHandler):
    """``CONNECT host:443`` for any host: a tunnel to the stand-in, which speaks TLS for ``*.blob``."""

    server: _ConnectProxy
    rbufsize = 0  # unbuffered: nothing of the tunnelled stream is left in a read buffer
    disable_nagle_algorithm = True  # each spliced piece goes on at once (see _Handler)

    def handle(self) -> None:
        request = self.rfile.readline(65536).decode("latin-1")
        while self.rfile.readline(65536) not in (b"\r\n", b"\n", b""):
            pass
        if not request.startswith("CONNECT "):
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        with socket.create_connection(self.server.upstream, timeout=30) as up:
            up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()
            down = self.connection
            for _ in range(100_000):
                ready, _, _ = select.select([down, up], [], [], 30)
                if not ready:
                    return
                for src, dst in ((down, up), (up, down)):
                    if src in ready:
                        data = src.recv(65536)
                        if not data:
                            return
                        dst.sendall(data)


class _Handler(BaseHTTPRequestHandler):
    standin: AzureStandin
    protocol_version = "HTTP/1.1"
    #: Headers and body are two writes: with Nagle's algorithm the body would wait for the client's
    #: delayed ACK (40 ms a request on a kept-alive connection).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the recorded requests are the log."""

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        headers = dict(headers or {})
        # A HEAD names the length of the body it does not send; one Content-Length header either way.
        self.send_header("Content-Length", headers.pop("Content-Length", str(len(data))))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        host = self.headers.get("Host", "")
        st = self.standin
        blob = ".blob." in host
        body: Any = raw if blob else (json.loads(raw) if raw else None)
        with st.lock:
            st.state.requests.append(Recorded(self.command, parts.path, parse_qs(parts.query),
                                              None if blob else body, host, dict(self.headers)))
        if blob:
            self._send(*_blob(st, self.command, unquote(parts.path), parse_qs(parts.query), raw, self.headers))
            return
        scoring = re.fullmatch(r"/endpoints/(?P<ep>[^/]+)(?P<rest>/.*)", parts.path)
        if st.route and scoring:
            status, out, extra = _route(st, self.command, scoring["ep"], scoring["rest"], raw, self.headers)
            extra = dict(extra or {})
            self._send(status, out, extra, extra.pop("Content-Type", "application/json"))
            return
        for method, pattern, func in ROUTES:
            m = re.fullmatch(pattern, parts.path)
            if m and method == self.command:
                if func is _deployment_put:  # serving starts outside the lock: it takes seconds
                    status, out, headers = func(st, m, body)
                else:
                    with st.lock:
                        status, out, headers = func(st, m, body)
                self._send(status, out, headers)
                return
        missing = f"stand-in has no route {self.command} {parts.path}"
        self._send(404, {"error": {"code": "NotFound", "message": missing}})

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = _handle


Result = tuple[int, Any, dict[str, str] | None]


def _not_found(what: str) -> Result:
    return 404, {"error": {"code": "UserError", "message": f"{what} not found"}}, None


def _lro(st: AzureStandin, status: int, body: Any, error: str | None = None) -> Result:
    op = uuid.uuid4().hex
    st.state.operations[op] = [0, error]
    url = f"{st.url}/operations/{op}?api-version=2023-10-01"
    return status, body, {"Azure-AsyncOperation": url, "Location": url, "Retry-After": "0"}


def _operation(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    op = st.state.operations.get(m["op"])
    if op is None:
        return _not_found(f"operation {m['op']}")
    op[0] += 1
    if op[0] <= st.in_progress_polls:
        return 200, {"status": "InProgress"}, {"Retry-After": "0"}
    if op[1]:
        return 200, {"status": "Failed", "error": {"code": "DeploymentFailed", "message": op[1]}}, None
    return 200, {"status": "Succeeded"}, {"Retry-After": "0"}


def _metadata(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    """ARM cloud metadata (what ARM_CLOUD_METADATA_URL names): one cloud whose endpoints are here."""
    return 200, [{"name": st.cloud, "portal": f"https://portal.{STORAGE_SUFFIX}", "resourceManager": st.url + "/",
                  "authentication": {"loginEndpoint": st.url + "/", "audiences": [st.url + "/"]},
                  "suffixes": {"storage": STORAGE_SUFFIX}}], None


def _workspace(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    rid = m.group(0)
    return 200, {"id": rid, "name": m["ws"], "location": "westeurope", "type":
                 "Microsoft.MachineLearningServices/workspaces",
                 "properties": {"workspaceId": str(uuid.UUID(int=1)), "discoveryUrl": st.url + "/discovery"}}, None


def _datastore(m: re.Match[str]) -> dict[str, Any]:
    ws = re.match(WS, m.group(0))
    assert ws is not None
    return {"id": f"{ws.group(0)}/datastores/workspaceblobstore", "name": "workspaceblobstore",
            "properties": {"datastoreType": "AzureBlob", "accountName": ACCOUNT, "containerName": CONTAINER,
                           "endpoint": STORAGE_SUFFIX, "protocol": "https", "isDefault": True,
                           "credentials": {"credentialsType": "AccountKey"}}}


def _datastores(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    return 200, {"value": [_datastore(m)]}, None


def _datastore_get(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    return 200, _datastore(m), None


def _list_secrets(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    return 200, {"secretsType": "AccountKey", "key": base64.b64encode(b"standin-account-key").decode()}, None


def _asset_put(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    """Versioned assets (models, codes, environments): stored as sent, with provisioning done."""
    resource = {"id": m.group(0), "name": m["version"], "type": m["kind"],
                "properties": {"flavors": {}, **(body or {}).get("properties", {}), "provisioningState": "Succeeded"}}
    st.state.assets[m.group(0)] = resource
    if m["kind"] == "models":
        st.state.models[(m["name"], m["version"])] = resource
    return 201, resource, None


def _asset_get(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    found = st.state.assets.get(m.group(0))
    return (200, found, None) if found else _not_found(f"{m['kind']} {m['name']}:{m['version']}")


def _asset_list(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    """Version list (the SDK asks for codes by content hash to reuse an upload): none to reuse."""
    return 200, {"value": []}, None


def _pending_upload(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    blob_uri = f"https://{ACCOUNT}.blob.{STORAGE_SUFFIX}/{CONTAINER}/LocalUpload/{uuid.uuid4().hex}"
    return 200, {"pendingUploadId": uuid.uuid4().hex, "pendingUploadType": "TemporaryBlobReference",
                 "blobReferenceForConsumption": {"blobUri": blob_uri, "storageAccountArmId": "standin",
                                                 "credential": {"credentialType": "SAS",
                                                                "sasUri": blob_uri + "?sv=standin&sig=x"}}}, None


def _traffic_error(st: AzureStandin, name: str, props: dict[str, Any]) -> str | None:
    """What Azure refuses in a traffic update: unknown or unprovisioned deployments, a bad sum."""
    for field_name in ("traffic", "mirrorTraffic"):
        for dep in (props.get(field_name) or {}):
            found = st.state.deployments.get((name, dep))
            if found is None or found["properties"]["provisioningState"] != "Succeeded":
                return f"{field_name}: deployment {dep} does not exist or is not provisioned"
    total = sum((props.get("traffic") or {}).values())
    if total not in (0, 100):
        return f"traffic must sum to 100 (or 0), got {total}"
    mirrored = sum((props.get("mirrorTraffic") or {}).values())
    if mirrored > 50:
        return f"mirrorTraffic must sum to at most 50, got {mirrored}"
    if set(props.get("mirrorTraffic") or {}) & {d for d, w in (props.get("traffic") or {}).items() if w}:
        return "mirrorTraffic: a deployment that takes live traffic cannot also get mirrored traffic"
    return None


def _endpoint_put(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    name = m["ep"]
    host = st.url.replace("https://", "")
    props = dict(body.get("properties", {}))
    old = st.state.endpoints.get(name)
    if old is None:
        base = f"https://{host}/endpoints/{name}" if st.route else f"https://{host}/score/{name}"
        uris = {"scoringUri": f"{base}/score" if st.route else base,
                "swaggerUri": f"{base}/swagger.json" if st.route else f"https://{host}/swagger/{name}"}
        props.setdefault("traffic", {})
    else:  # an update: the URIs stay, traffic changes only when sent
        uris = {k: old["properties"][k] for k in ("scoringUri", "swaggerUri")}
        props.setdefault("traffic", old["properties"].get("traffic", {}))
        props.setdefault("mirrorTraffic", old["properties"].get("mirrorTraffic", {}))
        error = _traffic_error(st, name, props)
        if error:
            return 400, {"error": {"code": "BadArgument", "message": error}}, None
    resource = {"id": m.group(0), "name": name, "location": body.get("location", "westeurope"),
                "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
                "identity": {"type": "SystemAssigned"},
                "tags": body.get("tags", {}), "kind": body.get("kind"),
                "properties": {**props, "provisioningState": "Succeeded", **uris}}
    st.state.endpoints[name] = resource
    return _lro(st, 201 if old is None else 200, resource)


def _endpoint_get(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    ep = st.state.endpoints.get(m["ep"])
    return (200, ep, None) if ep else _not_found(f"endpoint {m['ep']}")


def _endpoint_delete(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    if st.state.endpoints.pop(m["ep"], None) is None:
        return 204, None, None
    for key in [k for k in st.state.deployments if k[0] == m["ep"]]:
        del st.state.deployments[key]
        served = st.state.served.pop(key, None)
        if served is not None:
            served.stop()
    return _lro(st, 202, None)


def _list_keys(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    if m["ep"] not in st.state.endpoints:
        return _not_found(f"endpoint {m['ep']}")
    return 200, {"primaryKey": f"primary-{m['ep']}", "secondaryKey": f"secondary-{m['ep']}"}, None


def _deployment_put(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    """Provision: ``serve`` starts the scoring server; its URI becomes the endpoint's scoring URI."""
    key = (m["ep"], m["dep"])
    with st.lock:
        if m["ep"] not in st.state.endpoints:
            return _not_found(f"endpoint {m['ep']}")
    served = st.serve(m["ep"], body) if st.serve else Served(None, "stand-in has no serve function", lambda: None)
    with st.lock:
        ok = served.scoring_uri is not None
        resource = {"id": m.group(0), "name": m["dep"], "location": "westeurope", "sku": body.get("sku"),
                    "tags": body.get("tags", {}), "kind": body.get("kind"),
                    "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
                    "properties": {"scaleSettings": {"scaleType": "Default"}, **body.get("properties", {}),
                                   "provisioningState": "Succeeded" if ok else "Failed"}}
        st.state.deployments[key] = {**resource, "logs": served.logs}
        previous = st.state.served.pop(key, None)  # an update in place replaces the server
        if previous is not None:
            previous.stop()
        if ok:
            st.state.served[key] = served
            if not st.route:  # one deployment per endpoint: its server is the endpoint
                st.state.endpoints[m["ep"]]["properties"]["scoringUri"] = served.scoring_uri
        error = None if ok else ("Deployment failed: the inference server did not start; "
                                 "see the InferenceServer container logs")
        return _lro(st, 201, resource, error)


def _deployment_get(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    dep = st.state.deployments.get((m["ep"], m["dep"]))
    if dep is None:
        return _not_found(f"deployment {m['dep']}")
    return 200, {k: v for k, v in dep.items() if k != "logs"}, None


def _deployment_list(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    return 200, {"value": [{k: v for k, v in dep.items() if k != "logs"}
                           for (ep, _), dep in st.state.deployments.items() if ep == m["ep"]]}, None


def _deployment_delete(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    if (m["ep"], m["dep"]) not in st.state.deployments:
        return 204, None, None
    if (st.state.endpoints[m["ep"]]["properties"].get("traffic") or {}).get(m["dep"]):
        return 400, {"error": {"code": "BadArgument", "message": f"deployment {m['dep']} takes traffic; "
                               "set its traffic to 0 first"}}, None
    if (st.state.endpoints[m["ep"]]["properties"].get("mirrorTraffic") or {}).get(m["dep"]):
        return 400, {"error": {"code": "BadArgument", "message": f"deployment {m['dep']} gets mirrored traffic; "
                               "set its mirror traffic to 0 first"}}, None
    del st.state.deployments[(m["ep"], m["dep"])]
    served = st.state.served.pop((m["ep"], m["dep"]), None)
    if served is not None:
        served.stop()
    return _lro(st, 202, None)


def _route(st: AzureStandin, method: str, name: str, rest: str, raw: bytes, headers: Any) -> Result:
    """The endpoint front end: the header's deployment, else one drawn by the traffic weights; a
    request routed by the weights is copied to the mirrored deployments at their share."""
    with st.lock:
        ep = st.state.endpoints.get(name)
        if ep is None:
            return _not_found(f"endpoint {name}")
        pinned = headers.get("azureml-model-deployment")
        mirrored: list[str] = []
        if pinned:
            dep = pinned
        else:
            weights = {d: w for d, w in (ep["properties"].get("traffic") or {}).items() if w}
            if not weights:
                return 503, {"message": "no deployment takes traffic on this endpoint"}, None
            dep = random.choices(list(weights), list(weights.values()))[0]
            if rest == "/score":
                for mdep, share in (ep["properties"].get("mirrorTraffic") or {}).items():
                    credit = st.state.mirror_credit.get((name, mdep), 0) + int(share)
                    if credit >= 100:
                        credit -= 100
                        mirrored.append(mdep)
                    st.state.mirror_credit[(name, mdep)] = credit
        served = st.state.served.get((name, dep))
    if served is None or served.scoring_uri is None:
        return 404, {"message": f"deployment {dep} not found or not running on endpoint {name}"}, None
    cid = headers.get("x-request-id") or str(uuid.uuid4())
    scoring = method == "POST" and rest == "/score"
    if scoring and not _admit(st, (name, dep)):
        return 429, {"message": "Too many pending requests"}, None
    try:
        resp = _forward(st, served, name, dep, method, rest, raw, headers, cid)
    except requests.RequestException as exc:
        return 502, {"message": f"deployment {dep} did not answer: {exc}"}, None
    finally:
        if scoring:
            with st.lock:
                st.state.in_flight[(name, dep)] -= 1
    for mdep in mirrored:  # the copy's answer (or failure) never reaches the caller
        with st.lock:
            copy_to = st.state.served.get((name, mdep))
        if copy_to is not None and copy_to.scoring_uri is not None:
            try:
                _forward(st, copy_to, name, mdep, method, rest, raw, headers, cid)
            except requests.RequestException:
                pass
    return resp.status_code, resp.content, {"Content-Type": resp.headers.get("Content-Type", "application/json"),
                                            "azureml-model-deployment": dep, "x-request-id": cid}


def admits(deployment: dict[str, Any]) -> int:
    """What a deployment takes at once: Azure answers 429 beyond 2 x max_concurrent_requests_per_instance
    x instance_count ("Troubleshooting online endpoint deployment and scoring", HTTP status codes)."""
    settings = deployment.get("properties", {}).get("requestSettings") or {}
    cap = int(settings.get("maxConcurrentRequestsPerInstance") or 1)
    return 2 * cap * int((deployment.get("sku") or {}).get("capacity") or 1)


def _admit(st: AzureStandin, key: tuple[str, str]) -> bool:
    """Count one more scoring request on the deployment, or refuse it (counted) when it admits no more."""
    with st.lock:
        busy = st.state.in_flight.get(key, 0)
        if busy >= admits(st.state.deployments[key]):
            st.state.refused[key] = st.state.refused.get(key, 0) + 1
            return False
        st.state.in_flight[key] = busy + 1
        st.state.peak[key] = max(st.state.peak.get(key, 0), busy + 1)
        return True


def _forward(st: AzureStandin, served: Served, name: str, dep: str, method: str, rest: str, raw: bytes,
             headers: Any, cid: str) -> requests.Response:
    """One deployment's answer; a scored request is written to the collector's output."""
    assert served.scoring_uri is not None
    upstream = served.scoring_uri.rsplit("/score", 1)[0] + rest
    forward = {k: v for k, v in headers.items() if k.lower() in ("authorization", "content-type")}
    scored = rest == "/score" and method == "POST"
    if scored:  # as an entry script collects: its inputs before run() scores them
        _collect(st, name, dep, "model_inputs", cid, raw)
    with requests.Session() as session:
        session.trust_env = False  # straight to the loopback server, never through HTTPS_PROXY
        resp = session.request(method, upstream, data=raw or None, headers=forward, timeout=60)
    if scored and 200 <= resp.status_code < 300:
        _collect(st, name, dep, "model_outputs", cid, resp.content)
    return resp


def _collect(st: AzureStandin, name: str, dep: str, collection: str, cid: str, raw: bytes) -> None:
    """One data collector event, appended as Azure ML writes it (its CloudEvents fields) to the default
    datastore's ``modelDataCollector/`` and, with ``collector``, to that folder."""
    try:
        doc: Any = json.loads(raw) if raw else None
    except ValueError:
        doc = raw.decode("utf-8", "replace")
    data = doc.get("data", doc) if isinstance(doc, dict) and collection == "model_inputs" else doc
    stamp = time.time()
    now = time.gmtime(stamp)
    event = {"specversion": "1.0", "id": str(uuid.uuid4()),
             "source": f"{WS_PATH}/onlineEndpoints/{name}/deployments/{dep}",
             "type": f"azureml.inference.{collection}", "datacontenttype": "application/json",
             "time": time.strftime("%Y-%m-%dT%H:%M:%S", now) + f".{int(stamp % 1 * 1000):03d}Z",
             "data": data, "correlationid": cid, "xrequestid": cid, "modelversion": "default",
             "collectdatatype": "pandas.core.frame.DataFrame", "agent": "azureml-ai-monitoring/standin"}
    line = (json.dumps(event) + "\n").encode()
    relative = f"{name}/{dep}/{collection}/{time.strftime('%Y/%m/%d/%H', now)}/standin.jsonl"
    with st.lock:
        blob = f"/{CONTAINER}/modelDataCollector/{relative}"
        st.state.blobs[blob] = (st.state.blobs.get(blob, (b"", {}))[0] + line, {})
        if st.collector is not None:
            (st.collector / relative).parent.mkdir(parents=True, exist_ok=True)
            with (st.collector / relative).open("ab") as out:
                out.write(line)


def _registry_discovery(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    """Registry discovery (the registry's subscription, group and regional front end): here, for a
    registry that holds a model."""
    if not any(reg == m["reg"] for reg, _, _ in st.state.registry_models):
        return _not_found(f"registry {m['reg']}")
    sub, rg = REGISTRY_SCOPE
    return 200, {"registryName": m["reg"], "primaryRegion": "westeurope", "regions": ["westeurope"],
                 "subscriptionId": sub, "resourceGroup": rg, "primaryRegionResourceProviderUri": st.url + "/",
                 "registryFqdns": {"westeurope": {"api": st.url + "/"}}}, None


def _registry_model(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    found = st.state.registry_models.get((m["reg"], m["name"], m["version"]))
    return (200, found, None) if found else _not_found(f"model {m['name']}:{m['version']} in registry {m['reg']}")


def _registry_dataref(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    """A read SAS for a registry model's blobs: the container's URL with a token (what the SDK lists)."""
    if (m["reg"], m["name"], m["version"]) not in st.state.registry_models:
        return _not_found(f"model {m['name']}:{m['version']} in registry {m['reg']}")
    container = f"https://{REGISTRY_ACCOUNT}.blob.{STORAGE_SUFFIX}/registry-{m['reg']}"
    return 200, {"blobReferenceForConsumption": {"blobUri": body.get("blobUri") if body else container,
                                                 "credential": {"credentialType": "SAS",
                                                                "sasUri": container + "?sv=standin&sig=x"}}}, None


def _get_logs(st: AzureStandin, m: re.Match[str], body: Any) -> Result:
    dep = st.state.deployments.get((m["ep"], m["dep"]))
    if dep is None:
        return _not_found(f"deployment {m['dep']}")
    lines = dep["logs"].splitlines()[-int((body or {}).get("tail") or 100):]
    return 200, {"content": "\n".join(lines)}, None


def _blob(st: AzureStandin, method: str, path: str, query: dict[str, list[str]], raw: bytes,
          headers: Any) -> Result:
    """The Blob service calls of an upload and a download: properties (HEAD), put blob, set metadata,
    list, and (ranged) get."""
    comp = (query.get("comp") or [""])[0]
    meta = {k.lower()[len("x-ms-meta-"):]: v for k, v in headers.items() if k.lower().startswith("x-ms-meta-")}
    with st.lock:
        if method == "PUT" and comp == "metadata":
            if path not in st.state.blobs:
                return 404, None, {"x-ms-error-code": "BlobNotFound"}
            st.state.blobs[path] = (st.state.blobs[path][0], meta)
            return 200, None, {"ETag": '"1"', "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"}
        if method == "PUT" and not comp:
            st.state.blobs[path] = (raw, meta)
            return 201, None, {"ETag": '"1"', "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT",
                               "x-ms-request-server-encrypted": "true"}
        if method in ("HEAD", "GET") and (query.get("restype") or [""])[0] == "container" and comp == "list":
            prefix = (query.get("prefix") or [""])[0]
            container = "/" + path.strip("/") + "/"
            names = sorted(p[len(container):] for p in st.state.blobs if p.startswith(container + prefix))
            xml = ("<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults><Blobs>"
                   + "".join(f"<Blob><Name>{n}</Name><Properties><Content-Length>"
                             f"{len(st.state.blobs[container + n][0])}</Content-Length><BlobType>BlockBlob"
                             "</BlobType></Properties></Blob>" for n in names)
                   + "</Blobs><NextMarker /></EnumerationResults>")
            return 200, xml.encode(), {"Content-Type": "application/xml"}
        if method in ("HEAD", "GET") and not comp:
            found = st.state.blobs.get(path)
            if found is None:
                return 404, None, {"x-ms-error-code": "BlobNotFound"}
            data, metadata = found
            ranged = re.fullmatch(r"bytes=(\d+)-(\d*)", headers.get("x-ms-range") or headers.get("Range") or "")
            if method == "GET" and ranged:  # a download asks in ranges; Azure answers 206 + Content-Range
                first = int(ranged[1])
                last = min(int(ranged[2]) if ranged[2] else len(data) - 1, len(data) - 1)
                return 206, data[first:last + 1], {
                    "x-ms-blob-type": "BlockBlob", "ETag": '"1"', "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT",
                    "Content-Range": f"bytes {first}-{last}/{len(data)}",
                    **{f"x-ms-meta-{k}": v for k, v in metadata.items()}}
            return 200, data if method == "GET" else None, {
                "x-ms-blob-type": "BlockBlob", "ETag": '"1"', "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT",
                **({"Content-Length": str(len(data))} if method == "HEAD" else {}),
                **{f"x-ms-meta-{k}": v for k, v in metadata.items()}}
    return 400, None, {"x-ms-error-code": "UnsupportedByStandin"}


_ASSET = WS + r"/(?P<kind>models|codes|environments)/(?P<name>[^/]+)/versions/(?P<version>[^/]+)"
_DEP = WS + r"/onlineEndpoints/(?P<ep>[^/]+)/deployments/(?P<dep>[^/]+)"
_REG = (r"/mferp/managementfrontend/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
        r"Microsoft\.MachineLearningServices/registries/(?P<reg>[^/]+)")

ROUTES: list[tuple[str, str, Any]] = [
    ("GET", r"/operations/(?P<op>[0-9a-f]+)", _operation),
    ("GET", r"/metadata/endpoints", _metadata),
    ("GET", WS, _workspace),
    ("GET", WS + r"/datastores", _datastores),
    ("GET", WS + r"/datastores/(?P<ds>[^/]+)", _datastore_get),
    ("POST", WS + r"/datastores/(?P<ds>[^/]+)/listSecrets", _list_secrets),
    ("PUT", _ASSET, _asset_put),
    ("GET", _ASSET, _asset_get),
    ("GET", WS + r"/(?P<kind>models|codes|environments)/(?P<name>[^/]+)/versions", _asset_list),
    ("POST", _ASSET + r"/startPendingUpload", _pending_upload),
    ("PUT", WS + r"/onlineEndpoints/(?P<ep>[^/]+)", _endpoint_put),
    ("GET", WS + r"/onlineEndpoints/(?P<ep>[^/]+)", _endpoint_get),
    ("DELETE", WS + r"/onlineEndpoints/(?P<ep>[^/]+)", _endpoint_delete),
    ("POST", WS + r"/onlineEndpoints/(?P<ep>[^/]+)/listKeys", _list_keys),
    ("PUT", _DEP, _deployment_put),
    ("GET", _DEP, _deployment_get),
    ("DELETE", _DEP, _deployment_delete),
    ("GET", WS + r"/onlineEndpoints/(?P<ep>[^/]+)/deployments", _deployment_list),
    ("POST", _DEP + r"/getLogs", _get_logs),
    ("GET", r"/registrymanagement/v1\.0/registries/(?P<reg>[^/]+)/discovery", _registry_discovery),
    ("GET", _REG + r"/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)", _registry_model),
    ("POST", _REG + r"/datarefs/(?P<name>[^/]+)/versions/(?P<version>[^/]+)", _registry_dataref),
]
