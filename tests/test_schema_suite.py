"""The schema suite against real local endpoints: the reference release and broken score.py variants."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from .conftest import ReferenceRun, ReleaseProject, kill_group

SCHEMA_ONLY = ("--release-stage", "devtest", "--release-require", "schema", "-m", "schema")
RUN_START = "def run(data):\n"


def _schema(verdict: dict[str, Any]) -> dict[str, Any]:
    return verdict["findings"]["schema"]


def _by_kind(verdict: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["kind"]: f for f in _schema(verdict)["findings"]}


def test_reference_passes_under_azure_and_lists_its_defects(reference_run: ReferenceRun) -> None:
    result = reference_run.result
    verdict = reference_run.verdict()
    counts = verdict["suites"]["schema"]
    assert counts["passed"] == 27 and counts["failed"] == counts["errors"] == 0, counts
    assert verdict["decision"] == "PROMOTE"
    schema = _schema(verdict)
    assert schema["policy"] == "azure"
    assert schema["requests_sent"] > 60
    found = _by_kind(verdict)
    assert all(f["severity"] == "defect" for f in found.values())
    # The ML-specific gaps a generic fuzzer cannot see, and the generic ones it can.
    assert found["too-few-features"]["status"] == 500
    assert "An unexpected error occurred in scoring script" in found["too-few-features"]["message"]
    assert found["nan-value"]["status"] == 200 and "scored with status 200" in found["nan-value"]["message"]
    assert {"schema-feature-count-unpinned", "schema-data-not-required", "no-key", "numeric-string"} <= set(found)
    assert found["nan-value"]["curl"].startswith("curl -sS -i -X POST http://127.0.0.1:")
    assert "Authorization" not in found["nan-value"]["curl"], "the local endpoint has no key"
    result.stdout.fnmatch_lines(["*scored with status 200 instead of refused: 4 (*nan-value*"])


def test_strict_policy_fails_the_defects_and_a_crash_on_an_extreme_valid_value_is_shrunk(
        release_project: ReleaseProject) -> None:
    """One schema gate for two behaviours that different probes show. Under ``policy = "strict"``
    the example's contract defects fail. And run() divides by visibility, which the holdout shows
    can be 0: a valid request crashes it, and the failing body is shrunk to that one row."""
    manifest = release_project.release / "release.toml"
    manifest.write_text(manifest.read_text() + '\n[schema]\npolicy = "strict"\n')
    release_project.edit("score.py", RUN_START,
                         RUN_START + "    fog = [float(r[1]) / float(r[4]) for r in data]  # noqa: F841\n")
    result = release_project.run(*SCHEMA_ONLY, "--release-keep")
    kept = release_project.verdict()["endpoint"]
    try:
        assert result.ret == 1
        verdict = release_project.verdict()
        assert verdict["decision"] == "BLOCK"
        failing = verdict["suites"]["schema"]["failing"]
        assert any("test_negative_input[too-few-features]" in t for t in failing)
        assert any("test_negative_input[nan-value]" in t for t in failing)
        assert not any("missing-data-key" in t or "non-json-body" in t for t in failing), "those get a 400"
        assert ("a row of 6 values instead of 7: answered 500 (a client error should be 4xx)"
                in " ".join(verdict["reasons"]))
        assert _by_kind(verdict)["too-few-features"]["severity"] == "failure"
        assert _by_kind(verdict)["no-key"]["severity"] == "defect", "no key is configured: not a strict failure"

        result.stdout.fnmatch_lines(["*a valid request answered 500*minimal failing body*",
                                     "*reproduce: curl -sS -i -X POST http://127.0.0.1:*"])
        finding = _by_kind(verdict)["valid-input-refused"]
        assert finding["severity"] == "failure" and finding["status"] == 500
        rows = json.loads(finding["body"])["data"]
        assert len(rows) == 1 and rows[0][4] == 0.0, f"not shrunk to one row with visibility 0: {rows}"
        if shutil.which("curl"):
            out = subprocess.run(finding["curl"], shell=True, capture_output=True, text=True, timeout=30).stdout
            assert out.startswith("HTTP/1.1 500"), out[:200]
    finally:
        kill_group(kept["pid"])


def test_error_string_with_200_and_a_traceback_echo_are_caught(release_project: ReleaseProject) -> None:
    """One release with two defects that different probes find: run() returns an error string with
    200 for a negative temperature (a valid request: the output schema is violated), and answers
    every exception with a 400 quoting the traceback (an invalid request: a leak)."""
    release_project.edit("score.py", "def run(data):\n    x = ", """def run(data):
    try:
        return _run(data)
    except Exception:
        import traceback
        from azureml_inference_server_http.api.aml_response import AMLResponse
        return AMLResponse(traceback.format_exc(), 400)


def _run(data):
    if (np.asarray(data, dtype=float)[:, 0] < 0).any():
        return 'error'
    x = """)
    result = release_project.run_inprocess(*SCHEMA_ONLY)
    assert result.ret == 1
    verdict = release_project.verdict()
    finding = _by_kind(verdict)["output-schema-violation"]
    assert finding["status"] == 200
    assert "does not match the published output schema" in finding["message"]
    assert json.loads(finding["body"])["data"][0][0] < 0
    leaks = [f for f in _schema(verdict)["findings"] if f["kind"] == "leak"]
    assert leaks and all(f["severity"] == "failure" for f in leaks)
    assert any("Python traceback" in f["message"] for f in leaks)
    # The scaler refuses Infinity inside run(); the variant turns that into a 400 quoting the traceback.
    assert any("test_negative_input[infinity-value]" in t for t in verdict["suites"]["schema"]["failing"])
    assert "Infinity where a number belongs: the 400 answer leaks a Python traceback" in " ".join(verdict["reasons"])


@pytest.mark.parametrize(("table", "expected"), [
    ('policy = "lenient"', "*release.toml: schema.policy: unknown policy 'lenient'*"),
    ("max_examples = 0", "*release.toml: schema.max_examples: expected a whole number >= 1, got 0*"),
    ("examples = 5", "*release.toml: schema.examples: unknown key*"),
], ids=["policy", "max-examples", "unknown-key"])
def test_bad_schema_table_stops_before_deploy(release_project: ReleaseProject, table: str, expected: str) -> None:
    manifest = release_project.release / "release.toml"
    manifest.write_text(manifest.read_text() + f"\n[schema]\n{table}\n")
    result = release_project.run_inprocess(*SCHEMA_ONLY)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])
    assert "Traceback" not in result.stderr.str()
