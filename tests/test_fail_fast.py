"""Fail fast, say why: a target that cannot work is a configuration error with a verdict, and an
address where nothing listens is a named failure within seconds, not a silent wait for readiness."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from releasetest.endpoint.factory import TargetOptions, build_endpoint
from releasetest.errors import DeployError
from releasetest.release.manifest import load_release

from .conftest import EXAMPLE, ReleaseProject, loopback_server

#: Bound on one gate run here; a run that waits out the 120 s readiness timeout fails on it.
RUN_TIMEOUT_S = 60


def _free_port() -> int:
    """A port that was free a moment ago; nothing listens on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_url_target_without_url_is_a_configuration_error_with_a_verdict(release_project: ReleaseProject) -> None:
    result = release_project.run_inprocess("--release-stage", "devtest", "--release-target", "url")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [ln for ln in result.stderr.lines if ln.startswith("ERROR:")]
    assert errors == ["ERROR: releasetest: release configuration: --release-url: --release-target url "
                      "(from command line) needs the scoring URI of the endpoint to test (fix: pass --release-url URL, "
                      "or set RELEASETEST_URL or ini release_url)"], result.stderr.str()
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK" and verdict["target"] == "url"
    assert verdict["reasons"] == [f"configuration error: {errors[0].removeprefix('ERROR: releasetest: ')}"]


def test_gate_against_a_url_where_nothing_listens_blocks_naming_it(release_project: ReleaseProject) -> None:
    port = _free_port()
    result = release_project.run_inprocess("--release-stage", "devtest", "--release-target", "url",
                                 f"--release-url=http://127.0.0.1:{port}/score")
    assert result.ret == 1
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK"
    assert verdict["reasons"][0] == (f"deploy failed: endpoint at http://127.0.0.1:{port}/score is not ready: "
                                     f"nothing answers at http://127.0.0.1:{port}/ (Connection refused) for 3 s")


class _NotReady(BaseHTTPRequestHandler):
    """An endpoint's front end whose model is still loading: it answers, with 503."""

    def do_GET(self) -> None:
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        """Quiet: the test reads the error, not the access log."""


@pytest.fixture
def not_ready() -> Iterator[str]:
    with loopback_server(_NotReady) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}/score"


def test_a_server_that_answers_but_is_not_ready_keeps_the_full_timeout(not_ready: str, tmp_path: Path) -> None:
    """Past the 3 s allowed for refused connections, up to the readiness timeout (7 s here)."""
    release = load_release(EXAMPLE / "release.toml")
    endpoint = build_endpoint("url", release, release.stage("devtest"),
                              TargetOptions(log_dir=tmp_path, ready_timeout=7, url=not_ready))
    with pytest.raises(DeployError) as info:
        endpoint.deploy()
    assert info.value.cause == (f"endpoint at {not_ready} is not ready: "
                                "not ready within 7 s (last: liveness answered 503)")
