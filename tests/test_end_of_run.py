"""The end of a run: one path decides, runs the verdict hook, settles, seals and writes the verdict."""

from __future__ import annotations

from typing import Any

import pytest

from releasetest.verdict.decision import gate_exit_status, settle
from tests.conftest import INI, ReleaseProject
from tests.recorded_target import RecordedTarget
from tests.test_azureml_target import arm  # noqa: F401  (the Azure ML stand-in fixture)


def test_a_verdict_hook_cannot_promote_a_blocked_run(release_project: ReleaseProject, recorded: RecordedTarget) -> None:
    release_project.pytester.makeconftest("""
        def pytest_releasetest_verdict(config, verdict):
            verdict["decision"] = "PROMOTE"
            verdict["reasons"] = ["the hook says ship it"]
    """)
    release_project.pytester.makepyfile(test_own="""
        def test_own():
            pass
    """)
    result = release_project.run_inprocess("--release-stage", "devtest", *recorded.args, "test_own.py",
                                           "-k", "test_own")
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK"
    assert "required suite 'smoke' did not run (no test of it ran)" in verdict["reasons"]
    assert "the hook says ship it" in verdict["reasons"]
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert verdict["exit_status"] == pytest.ExitCode.TESTS_FAILED


def test_settle_lets_a_hook_block_but_never_promote() -> None:
    passed = ("PROMOTE", ["all 40 tests passed in suites: smoke"])
    assert settle(passed, "BLOCK", [*passed[1], "dashboard: change freeze"]) == ("BLOCK", ["dashboard: change freeze"])
    assert settle(passed, "BLOCK", passed[1])[0] == "BLOCK"
    assert settle(passed, "PROMOTE", [*passed[1], "noted"]) == ("PROMOTE", [*passed[1], "noted"])
    blocked = ("BLOCK", ["smoke: 1 failed"])
    assert settle(blocked, "PROMOTE", []) == ("BLOCK", ["smoke: 1 failed"])
    assert gate_exit_status("BLOCK", 0) == 1
    assert gate_exit_status("BLOCK", 2) == 2
    assert gate_exit_status("PROMOTE", 0) == 0


@pytest.mark.long
@pytest.mark.parametrize("workers", [(), ("-n", "1")], ids=["fixture-teardown", "xdist-controller-teardown"])
def test_teardown_failure_is_a_verdict_warning_under_filterwarnings_error(release_project: ReleaseProject,
                                                                          arm: Any, workers: tuple[str, ...],  # noqa: F811
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The stand-in refuses to delete the endpoint: the real azure-ai-ml client raises in teardown
    (in the endpoint fixture without xdist, at the end of the run on the xdist controller)."""
    if workers:
        pytest.importorskip("xdist")
    standin = pytest.importorskip("tests.azure_standin")

    def refuse_delete(st: Any, m: Any, body: Any) -> Any:
        return 409, {"error": {"code": "Conflict", "message": "endpoint is locked"}}, None

    monkeypatch.setattr(standin, "ROUTES", [(method, pattern, refuse_delete if func is standin._endpoint_delete
                                             else func) for method, pattern, func in standin.ROUTES])
    release_project.pytester.makeini(INI + "filterwarnings = error\n")
    release_project.pytester.makepyfile(test_own="""
        def test_own(endpoint):
            pass
    """)
    result = release_project.run("--release-stage", "devtest", "--release-target", "azureml",
                                 "test_own.py", "-k", "test_own", *workers)
    assert release_project.verdict_path.exists(), result.stdout.str()[-3000:] + result.stderr.str()[-3000:]
    verdict = release_project.verdict()
    assert any(w.startswith("endpoint teardown failed:") and "locked" in w for w in verdict["warnings"])
    assert verdict["decision"] == "BLOCK"  # only the user's test ran; the required suites did not
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert arm.state.endpoints  # the refusal was real: the endpoint is still there

