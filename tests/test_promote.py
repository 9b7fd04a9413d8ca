"""A gate run's CI outputs, then approve and promote against real local endpoints (CLI in-process)."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from releasetest.cli import main
from releasetest.files import sha256_file

from .conftest import ReferenceRun, ReleaseProject, process_group_gone


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_gate_outputs_then_approve_and_promote(reference_run: ReferenceRun, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The reference run's CI outputs; then its verdict, copied (the seal holds), is approved and promoted."""
    result, out_dir = reference_run.result, reference_run.out_dir
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"report: {out_dir / 'report.html'}",
                                 f"##vso[task.uploadsummary]{out_dir / 'summary.md'}"])
    verdict = reference_run.verdict()
    assert verdict["digest"].startswith("sha256:")
    props = {p.get("name"): p.get("value") for p in ET.parse(reference_run.junit).iter("property")}
    assert props["releasetest.decision"] == "PROMOTE"
    assert props["releasetest.release_id"] == verdict["release"]["id"]
    assert props["releasetest.verdict_digest"] == verdict["digest"]
    assert "✅ releasetest: PROMOTE port-weather@" in reference_run.gh_summary.read_text()
    assert "PROMOTE · port-weather@" in (out_dir / "report.html").read_text()

    vpath, store = str(tmp_path / "verdict.json"), str(tmp_path / "history")
    shutil.copyfile(reference_run.verdict_path, vpath)
    promote = ("promote", "--from", "devtest", "--to", "production", "--verdict", vpath, "--store", store)

    code, _, err = cli(capsys, *promote)
    assert code == 3
    assert "stage production requires an approval of this verdict and none is recorded" in err
    assert f"releasetest approve {vpath} --by NAME" in err

    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(dict(verdict, started_at="2020-01-01T00:00:00+00:00")))
    code, _, err = cli(capsys, "approve", str(tampered), "--by", "mallory", "--store", store)
    assert code == 3 and "verdict digest mismatch" in err and "edited after the run" in err

    code, out, _ = cli(capsys, "approve", vpath, "--by", "alice", "--store", store)
    assert code == 0 and "by alice" in out
    code, _, err = cli(capsys, *promote[:-4], "--verdict", str(tampered), "--store", store)
    assert code == 3 and "verdict digest mismatch" in err

    code, out, err = cli(capsys, *promote, "--by", "ci")
    assert code == 0, err
    assert "devtest -> production (local, AksDeploymentConfig.yml)" in out and "approved by alice" in out
    [record] = [json.loads(p.read_text()) for p in (tmp_path / "history" / "promotions").glob("*.json")]
    assert record["release_id"] == verdict["release"]["id"] and record["approved_by"] == ["alice"]
    assert record["endpoint"]["scoring_timeout_ms"] == 1000, "production's own deployment config was used"
    assert process_group_gone(record["endpoint"]["pid"])
    assert "Listening at: http://127.0.0.1:" in (tmp_path / "server-production.log").read_text()

    code, out, _ = cli(capsys, "history", "--store", store)
    assert code == 0
    assert "now: promoted production" in out
    assert re.search(r"gated +devtest +PROMOTE", out) and re.search(r"approved +production .*by alice", out)
    assert re.search(r"promoted +production .*at local http://127\.0\.0\.1:\d+/score", out)

    # The artifact changes after the test (in a copy: the reference run is shared): promote re-hashes it.
    release = tmp_path / "release"
    shutil.copytree(reference_run.release, release)
    manifest = release / "release.toml"
    changed = (*promote, "--manifest", str(manifest))
    onnx = release / "models" / "support-vector-classifier.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    code, _, err = cli(capsys, *changed)
    assert code == 3
    assert "the release no longer matches what was tested" in err
    assert "models/support-vector-classifier.onnx has sha256" in err
    # ... and re-pinning the new digest in the manifest does not help: the release id moved.
    manifest.write_text(manifest.read_text().replace(verdict["release"]["artifacts"][1]["files"][0]["sha256"],
                                                     sha256_file(onnx)))
    code, _, err = cli(capsys, *changed)
    assert code == 3 and "release changed since the test" in err and "re-run the gate" in err


def test_unknown_artifact_version_is_a_usage_error_with_a_report(release_project: ReleaseProject) -> None:
    result = release_project.run_inprocess("--release-stage", "devtest",
                                           "--release-artifact", "support-vector-classifier=9")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert ("release.toml: artifacts[support-vector-classifier]: version 9 was asked for (--release-artifact) "
            "but is not listed (listed: 1), and no model registry was given to fetch it from (fix: add its files "
            "and sha256 to the [[artifacts]] entry") in result.stderr.str()
    assert "Traceback" not in result.stderr.str()
    report = (release_project.root / "releasetest-out" / "report.html").read_text()
    assert "BLOCK · port-weather" not in report and "BLOCK · release@unknown" in report
    assert "version 9 was asked for" in report


def test_report_cli_rerenders_and_flags_an_edited_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from .synthetic import synthetic_verdict

    path = tmp_path / "verdict.json"
    path.write_text(json.dumps(synthetic_verdict()))
    code, out, _ = cli(capsys, "report", str(path), "--markdown", str(tmp_path / "s.md"))
    assert code == 0 and (tmp_path / "report.html").is_file() and "## ⛔" in (tmp_path / "s.md").read_text()
    assert "matches content" in (tmp_path / "report.html").read_text()
    path.write_text(json.dumps(dict(synthetic_verdict(), decision="PROMOTE")))
    code, _, err = cli(capsys, "report", str(path))
    assert code == 0 and "digest does not match" in err
    assert "DOES NOT MATCH" in (tmp_path / "report.html").read_text()
