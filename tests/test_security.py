"""Security of the local endpoint and of what a run writes: loopback only, key auth, no secret leaks."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from releasetest.checks.contract.probes import RepeatedRows, negative_probes
from releasetest.endpoint.client import ScoringClient
from releasetest.endpoint.local import LocalEndpoint
from releasetest.errors import ConfigError
from releasetest.files import MAX_CONFIG_BYTES
from releasetest.release.data import load_holdout
from releasetest.release.manifest import load_release

from .conftest import EXAMPLE, ReleaseProject, assert_clean_pass, copy_example, lighten

KNOWN_KEY = "rt-known-key-6f1c0d2b9a8e4f71b3c5"


def _listen_addresses(port: int) -> set[str]:
    """Local addresses of LISTEN sockets on ``port``, read from the kernel's table."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port:
                found.add(addr if width == 32 else socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
    return found


@pytest.fixture(scope="module")
def local_endpoint(tmp_path_factory: pytest.TempPathFactory):
    """A real local endpoint of the (light) example release's devtest stage, shared by this module's
    probes of the server itself: each checks the server still answers after its own probe."""
    root = tmp_path_factory.mktemp("security")
    release = load_release(lighten(copy_example(root)) / "release.toml")
    stage = release.stage("devtest")
    holdout = load_holdout(release.data)
    endpoint = LocalEndpoint(release, stage, holdout.golden(5), log_path=root / "server.log",
                             max_body_bytes=64 * 1024)
    handle = endpoint.deploy()
    try:
        yield handle
    finally:
        endpoint.teardown()


def test_listens_on_loopback_only(local_endpoint) -> None:
    assert _listen_addresses(local_endpoint.info["port"]) == {"127.0.0.1"}


def test_oversized_body_gets_413_and_server_survives(local_endpoint) -> None:
    big = {"data": [[1.0] * 7] * 5000}  # ~200 KB > 64 KB cap
    resp = requests.post(local_endpoint.scoring_uri, json=big, timeout=30)
    assert resp.status_code == 413
    assert "exceeds the limit of 65536" in resp.json()["message"]
    assert requests.get(local_endpoint.liveness_uri, timeout=10).status_code == 200


def test_oversized_chunked_body_gets_413_and_server_survives(local_endpoint) -> None:
    """No Content-Length to check up front: the cap holds while the body streams in."""
    def chunks():  # a generator body makes requests send Transfer-Encoding: chunked
        yield b'{"data": ['
        for i in range(5000):
            yield b"[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]" + (b"," if i < 4999 else b"")
        yield b"]}"

    resp = requests.post(local_endpoint.scoring_uri, data=chunks(), timeout=30,
                         headers={"Content-Type": "application/json"})
    assert resp.request.headers.get("Transfer-Encoding") == "chunked"
    assert resp.status_code == 413
    assert "exceeds the limit of 65536" in resp.json()["message"]
    assert requests.get(local_endpoint.liveness_uri, timeout=10).status_code == 200
    small = requests.post(local_endpoint.scoring_uri, data=iter([b'{"data": [[23.6, 0.76, 12.8, 79.0, ',
                                                                 b'15.8, 1015.7, 1.0]]}']),
                          headers={"Content-Type": "application/json"}, timeout=30)
    assert small.status_code == 200 and len(small.json()["predictions"]) == 1


def test_oversized_probe_stops_at_the_413(local_endpoint) -> None:
    """The schema suite's oversized body is streamed with its declared length: the server refuses it
    from the headers, and the client stops producing it instead of sending all of it."""
    probe = negative_probes([23.6, 0.76, 12.8, 79.0, 15.8, 1015.7, 1.0], oversized_kib=100 * 1024)["oversized-body"]
    produced = []

    class Counted(RepeatedRows):
        def __iter__(self):
            for chunk in super().__iter__():
                produced.append(len(chunk))
                yield chunk

    assert isinstance(probe.body, RepeatedRows)
    body = Counted([23.6, 0.76, 12.8, 79.0, 15.8, 1015.7, 1.0], probe.body.copies)
    with ScoringClient(local_endpoint) as client:
        resp = client.request("POST", local_endpoint.scoring_uri, data=body,
                              headers={"Content-Type": probe.content_type})
        assert resp.status_code == 413
        assert f"request body of {len(body)} bytes exceeds the limit of 65536" in resp.json()["message"]
        assert sum(produced) < len(body) // 10
        assert client.liveness().status_code == 200


def test_oversized_config_file_is_refused(tmp_path: Path) -> None:
    import shutil

    dest = tmp_path / "release"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("weather.csv"))
    (dest / "AciDeploymentConfig.yml").write_text("a: 1\n" + "#" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError, match="larger than the"):
        load_release(dest / "release.toml")


def test_key_auth_and_no_secret_in_any_output(release_project: ReleaseProject,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """authEnabled: True: smoke checks 401s with the run's fresh key, which appears in no output
    and is not the CI's endpoint key (``RELEASETEST_ENDPOINT_KEY``, for url targets)."""
    release_project.edit("AciDeploymentConfig.yml", "authEnabled: False", "authEnabled: True")
    monkeypatch.setenv("RELEASETEST_ENDPOINT_KEY", KNOWN_KEY)
    release_project.pytester.makepyfile(record_key="""
        def pytest_releasetest_endpoint_ready(config, handle):
            (config.rootpath / "endpoint-key.secret").write_text(handle.key)
    """)  # a plugin: the gate loads no conftest.py
    signing_pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    monkeypatch.setenv("RELEASETEST_SIGNING_KEY", signing_pem)
    result = release_project.run("-p", "record_key", "--release-stage", "devtest", "--junitxml=junit.xml", "-rA")
    assert_clean_pass(result)
    verdict = release_project.verdict()
    assert verdict["decision"] == "PROMOTE"
    assert verdict["endpoint"]["auth"] == "key"
    outputs = {"stdout": result.stdout.str(), "stderr": result.stderr.str(),
               "verdict": json.dumps(verdict)}
    for path in [release_project.root / "junit.xml", *(release_project.root / "releasetest-out").rglob("*")]:
        if path.is_file():
            outputs[str(path)] = path.read_text(errors="replace")
    assert len(outputs) >= 5
    used_key = (release_project.root / "endpoint-key.secret").read_text()
    assert used_key and used_key != KNOWN_KEY
    leaked = [name for name, text in outputs.items() if used_key in text or KNOWN_KEY in text]
    assert not leaked, f"the endpoint key leaked into {leaked}"
    assert verdict["signature"]["alg"] == "ed25519"
    key_lines = [ln for ln in signing_pem.splitlines() if "-----" not in ln]
    leaked = [name for name, text in outputs.items() if any(ln in text for ln in key_lines)]
    assert not leaked, f"the signing key leaked into {leaked}"
