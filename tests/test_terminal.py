"""What a person sees in the terminal: progress, one cause for a failed deploy, the gate's line last."""

from __future__ import annotations

from tests.conftest import ReferenceRun, ReleaseProject
from tests.recorded_target import RecordedTarget


def test_syntax_error_in_score_py_is_said_once_in_under_60_lines(release_project: ReleaseProject) -> None:
    release_project.edit("score.py", "def init():", "def init(:")
    result = release_project.run_inprocess("--release-stage", "devtest")
    out = result.outlines
    text = "\n".join(out)
    assert result.ret == 1
    assert len(out) < 60, text
    assert text.count("did not become ready") == 1, text
    assert text.count("def init(:") == 1, "the server log's cause is quoted once"
    assert "SyntaxError: invalid syntax" in text
    assert out[-1].startswith("releasetest: BLOCK port-weather@"), out[-1]
    verdict = release_project.verdict()
    not_run = sum(s["not_run"] for s in verdict["suites"].values())
    assert not_run > 40 and f"{not_run} not run (endpoint not ready)" in out[-2], out[-2]
    assert not any(s["errors"] for s in verdict["suites"].values())
    assert "releasetest: deploying port-weather@" in text and "deploy failed after" in text
    assert "SyntaxError" in verdict["deploy"]["log_tail"]


def test_wrong_golden_answers_are_not_a_crash(release_project: ReleaseProject) -> None:
    """The server is up and answers, but the first five golden rows were recorded as the other
    class: said as such, once, with no crash wording and no test counted as an error."""
    path = release_project.release / "data" / "expected_predictions.csv"
    lines = path.read_text().splitlines()
    for i in range(1, 6):
        label, *probs = lines[i].split(",")
        lines[i] = ",".join([str(1 - int(label)), *probs])
    path.write_text("\n".join(lines) + "\n")
    result = release_project.run_inprocess("--release-stage", "devtest")
    out = result.outlines
    text = "\n".join(out)
    assert result.ret == 1
    verdict = release_project.verdict()
    reason = verdict["reasons"][0]
    assert reason.startswith("the endpoint is up, but 5 of 6 golden rows differ from the training-time "
                             "predictions (exactly): row 1: got 1, recorded 0;"), reason
    assert verdict["deploy"]["answered"] is True and "deploy failed" not in text
    assert "releasetest: the endpoint is up after " in text and ", but not ready: 5 of 6 golden rows differ" in text
    assert f"  - {reason}" in out and "server log (no error in it: the server ran, the answer was wrong): " in text
    assert text.split("the answer was wrong): ")[1].split()[0].endswith("server-devtest.log")
    assert text.count("5 of 6 golden rows differ") == 3, "progress, the gate section and the gate's line"
    not_run = sum(s["not_run"] for s in verdict["suites"].values())
    assert not_run > 40 and out[-2].endswith(f" {not_run} not run (endpoint not ready) in {out[-2].split(' in ')[-1]}")
    assert not any(s["errors"] or s["failed"] for s in verdict["suites"].values())
    out_dir = release_project.root / "releasetest-out"
    assert f"| smoke | 0 | 0 | 0 | 0 + {verdict['suites']['smoke']['not_run']} not run |" in (
        out_dir / "summary.md").read_text()
    assert "<span>not run (endpoint not ready)</span>" in (out_dir / "report.html").read_text()
    assert out[-1].startswith("releasetest: BLOCK port-weather@") and out[-1].endswith(
        f"{not_run} not run | {reason}")


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
