"""``releasetest dispatch`` against a loopback stand-in for GitHub's REST API, and the trigger
mapping (``releasetest trigger``, ``--release-trigger``) without a CI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from releasetest import cli
from releasetest.errors import ReleaseTestError
from releasetest.pipeline import describe_trigger
from releasetest.settings import SettingError, parse_trigger

from .conftest import loopback_server


class GitHub:
    """Records each request; answers ``status`` (204 unless a test sets another, with GitHub's JSON error)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 204
        self.url = ""
        github = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                github.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
                self.send_response(github.status)
                reply = b"" if github.status == 204 else json.dumps({"message": "Not Found"}).encode()
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.handler = Handler


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHub]:
    gh = GitHub()
    with loopback_server(gh.handler) as server:
        gh.url = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("GITHUB_API_URL", gh.url)
        monkeypatch.setenv("GITHUB_TOKEN", "test-token")
        yield gh


def test_dispatch_posts_the_event_the_pipeline_turns_into_its_trigger(
        github: GitHub, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["dispatch", "--repo", "acme/port-weather", "--event", "model-registered",
                     "--model", "support-vector-classifier", "--version", "3"]) == 0
    assert f"to {github.url}/repos/acme/port-weather/dispatches" in capsys.readouterr().out
    (sent,) = github.requests
    assert sent["path"] == "/repos/acme/port-weather/dispatches"
    assert sent["headers"]["Authorization"] == "Bearer test-token"
    assert sent["headers"]["Accept"] == "application/vnd.github+json"
    assert sent["headers"]["X-GitHub-Api-Version"] == "2022-11-28"
    assert sent["body"] == {"event_type": "model-registered",
                            "client_payload": {"model": "support-vector-classifier", "version": "3"}}
    # What the workflow's env block makes of it (EVENT_* from github.event), read by `releasetest trigger`:
    values = describe_trigger("github", {
        "GITHUB_EVENT_NAME": "repository_dispatch", "EVENT_ACTION": sent["body"]["event_type"],
        "EVENT_MODEL": sent["body"]["client_payload"]["model"],
        "EVENT_VERSION": sent["body"]["client_payload"]["version"], "GITHUB_SHA": "c0ffee", "GITHUB_REF_NAME": "main"})
    assert values["RELEASETEST_ARTIFACT"] == "support-vector-classifier=3"
    assert "kind=artifact" in values["RELEASETEST_TRIGGER"]


def test_dispatch_image_event_and_its_refusals(github: GitHub, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    image = "mlreleases.azurecr.io/port-weather-scoring:7"
    assert cli.main(["dispatch", "--repo", "acme/pw", "--event", "image-pushed", "--image", image]) == 0
    assert github.requests[-1]["body"] == {"event_type": "image-pushed", "client_payload": {"image": image}}
    for argv, message in (
            (["--event", "model-registered", "--model", "svc"], "--event model-registered needs --version"),
            (["--event", "image-pushed", "--image", "x;rm -rf /"], "trigger field image="),
    ):
        assert cli.main(["dispatch", "--repo", "acme/pw", *argv]) == 2
        assert message in capsys.readouterr().err
    github.status = 404
    assert cli.main(["dispatch", "--repo", "acme/pw", "--event", "image-pushed", "--image", image]) == 2
    assert "GitHub answered 404 Not Found (check GITHUB_TOKEN and --repo)" in capsys.readouterr().err
    monkeypatch.delenv("GITHUB_TOKEN")
    sent = len(github.requests)
    assert cli.main(["dispatch", "--repo", "acme/pw", "--event", "image-pushed", "--image", image]) == 2
    assert "GITHUB_TOKEN is not set" in capsys.readouterr().err and len(github.requests) == sent


def test_parse_trigger_keeps_fields_and_refuses_bad_ones() -> None:
    assert parse_trigger("kind=artifact, model=svc,version=3,") == (
        ("kind", "artifact"), ("model", "svc"), ("version", "3"))
    with pytest.raises(SettingError, match="trigger needs kind= one of git, artifact"):
        parse_trigger("model=svc")
    with pytest.raises(SettingError, match="'branch' is not KEY=VALUE"):
        parse_trigger("kind=git,branch")


@pytest.mark.parametrize(("ci", "env", "expected"), [
    ("github", {"GITHUB_EVENT_NAME": "schedule", "SCHEDULE_CRON": "17 3 * * *", "GITHUB_REF_NAME": "main"},
     {"RELEASETEST_TRIGGER": "kind=schedule,branch=main,cron=17 3 * * *"}),
    ("github", {"GITHUB_EVENT_NAME": "workflow_dispatch", "INPUT_ARTIFACT": "a=1,b=2"},
     {"RELEASETEST_TRIGGER": "kind=api,artifact=a=1+b=2", "RELEASETEST_ARTIFACT": "a=1,b=2"}),
    ("azure", {"BUILD_REASON": "Manual", "EVENT_MODEL": "svc", "EVENT_VERSION": "4", "RUN_URL": "https://x/r/1"},
     {"RELEASETEST_TRIGGER": "kind=artifact,model=svc,version=4,run_url=https://x/r/1",
      "RELEASETEST_ARTIFACT": "svc=4"}),
])
def test_trigger_command_prints_each_ci_its_variables(ci: str, env: dict[str, str], expected: dict[str, str],
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GITHUB_EVENT_NAME", "GITHUB_SHA", "GITHUB_REF_NAME", "EVENT_ACTION", "BUILD_REASON",
                 "BUILD_SOURCEVERSION", "BUILD_SOURCEBRANCHNAME", "RUN_URL", "INPUT_ARTIFACT", "EVENT_MODEL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["trigger", "--ci", ci]) == 0
    lines = capsys.readouterr().out.splitlines()
    if ci == "github":
        assert dict(line.split("=", 1) for line in lines) == expected
    else:
        assert lines == [f"##vso[task.setvariable variable={k}]{v}" for k, v in expected.items()]
    # the trigger line is what --release-trigger takes
    assert dict(parse_trigger(expected["RELEASETEST_TRIGGER"]))["kind"] in ("schedule", "api", "artifact")


def test_trigger_refuses_an_unknown_event_and_an_unsafe_payload() -> None:
    with pytest.raises(ReleaseTestError, match="GITHUB_EVENT_NAME='pull_request'"):
        describe_trigger("github", {"GITHUB_EVENT_NAME": "pull_request"})
    with pytest.raises(ReleaseTestError, match="trigger field model="):
        describe_trigger("azure", {"BUILD_REASON": "Manual", "EVENT_MODEL": "svc\nkind=git", "EVENT_VERSION": "1"})
