"""What a person sees in the terminal: progress, one cause for a failed deploy, the gate's line last."""

from __future__ import annotations

from tests.conftest import ReferenceRun, ReleaseProject
from tests.recorded_target import RecordedTarget


def test_syntax_error_in_score_py_is_said_once_in_under_60_lines(release_project: ReleaseProject) -> None:
    release_project.edit("score.py", "def init():", "def init(:")
    result = release_project.run("--release-stage", "devtest")
    out = result.outlines
    text = "\n".join(out)
    assert result.ret == 1
    assert len(out) < 60, text
    assert text.count("did not become ready") == 1, text
    assert text.count("def init(:") == 1, "the server log's cause is quoted once"
    assert "SyntaxError: invalid syntax" in text
    assert out[-1].startswith("releasetest: BLOCK port-weather@"), out[-1]
    verdict = release_project.verdict()
    errors = sum(s["errors"] for s in verdict["suites"].values())
    assert errors > 40 and f"{errors} errors (deploy failed)" in out[-2], out[-2]
    assert "releasetest: deploying port-weather@" in text and "deploy failed after" in text
    assert "SyntaxError" in verdict["deploy"]["log_tail"]


def test_progress_defect_summary_and_gate_line_last(reference_run: ReferenceRun) -> None:
    result = reference_run.result
    out = result.outlines
    text = "\n".join(out)
    assert result.ret == 0, text
    assert "releasetest: endpoint ready in " in text and "cold start" in text
    deploying = next(i for i, line in enumerate(out) if line.startswith("releasetest: deploying"))
    collected = next(i for i, line in enumerate(out) if line.startswith("collected "))
    assert deploying < collected, "the server starts while pytest collects the suites"
    suites = reference_run.verdict()["suites"]
    for name in ("smoke", "acceptance", "schema", "load"):
        ran = sum(suites[name][k] for k in ("passed", "failed", "errors", "skipped"))
        assert f"releasetest: {name} suite: {ran} tests" in text
    assert "releasetest: load    1/" in text and "p99 so far" in text  # once a second, plain lines off a TTY
    assert "releasetest: load done: " in text
    assert "ContractDefectWarning" not in text and "warnings summary" not in text
    assert "  answered 500 (a client error should be 4xx): 10 (too-few-features," in text
    assert out[-1].startswith("releasetest: PROMOTE port-weather@"), out[-1]
    assert " passed" in out[-2] and out[-2].startswith("=")


def test_quiet_shows_no_progress(release_project: ReleaseProject, recorded: RecordedTarget) -> None:
    result = release_project.run_inprocess("--release-stage", "devtest", *recorded.args, "--release-require", "smoke",
                                           "-q", "-m", "smoke")
    text = "\n".join(result.outlines)
    assert "releasetest: deploying" not in text and "suite:" not in text
    assert result.outlines[-1].startswith("releasetest: PROMOTE (partial) port-weather@"), result.outlines[-1]
