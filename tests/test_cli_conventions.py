"""The releasetest command follows conventions: --version, --json, documented exit codes, partial runs."""

from __future__ import annotations

import json

import pytest

from releasetest import __version__
from releasetest.cli import main
from releasetest.verdict.history import Store
from releasetest.verdict.seal import seal_verdict
from tests.conftest import EXAMPLE, ReleaseProject
from tests.recorded_target import RecordedTarget
from tests.synthetic import synthetic_verdict


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_version_help_and_json(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    assert _cli(capsys, "--version")[1].strip() == f"releasetest {__version__}"
    code, out, _ = _cli(capsys, "--help")
    assert code == 0 and "exit status:" in out and "4  (the gate" in out and "``" not in out
    for command, shown in (("check", "the release manifest"), ("verdict", "the verdict file"),
                           ("report", "the verdict file"), ("approve", "the verdict file"), ("hash", "files to hash"),
                           ("azureml-plan", "the release manifest")):
        _, text, _ = _cli(capsys, command, "--help")
        assert shown in text.split("positional arguments:")[1].split("options:")[0], text
    code, out, _ = _cli(capsys, "check", str(EXAMPLE / "release.toml"), "--json")
    data = json.loads(out)
    assert code == 0 and data["stages"]["production"]["promote_to"] is None
    _, out, _ = _cli(capsys, "check", str(EXAMPLE / "release.toml"))
    assert "None" not in out and "production: AksDeploymentConfig.yml -> last stage, no promotion" in out
    store = Store(tmp_path / "h")
    verdict = seal_verdict(synthetic_verdict("PROMOTE"))
    store.approve(verdict, "alice")
    store.approve(verdict, "alice")
    code, out, _ = _cli(capsys, "history", "--store", str(tmp_path / "h"), "--json")
    (release,) = json.loads(out)
    gated, approved = release["events"]
    assert code == 0 and approved["by"] == "alice" and gated["partial"] is False
    path = tmp_path / "verdict.json"
    path.write_text(json.dumps(verdict))
    code, out, _ = _cli(capsys, "verdict", str(path), "--json")
    assert code == 0 and json.loads(out)["decision"] == "PROMOTE"


def test_partial_run_keeps_the_full_verdict(release_project: ReleaseProject, recorded: RecordedTarget) -> None:
    release_project.pytester.makeini("[pytest]\nrelease_config = release/release.toml\n")
    release_project.verdict_path.parent.mkdir(parents=True)
    release_project.verdict_path.write_text('{"full": true}')
    result = release_project.run_inprocess("--release-stage", "devtest", *recorded.args, "-k", "liveness")
    partial = json.loads((release_project.verdict_path.parent / "verdict.partial.json").read_text())
    assert partial["partial"] is True and partial["partial_because"] == "-k liveness"
    assert release_project.verdict()["full"] is True, "the last full verdict stays"
    assert result.outlines[-1].startswith("releasetest: BLOCK (partial) port-weather@"), result.outlines[-1]
    (release,) = Store(release_project.verdict_path.parent / "history").releases()
    assert release["events"][0]["partial"] is True
