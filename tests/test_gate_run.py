"""The gate run: end to end against a real local azmlinfsrv endpoint in a subprocess where the
endpoint is what is tested; in this process (``run_inprocess``, the ``recorded`` target) where the
plugin's wiring is (options, markers, the end of the run, the xdist hand-over)."""

from __future__ import annotations

import pytest

from releasetest.release.manifest import load_release

from .conftest import (
    NO_BUILTIN_SUITE,
    ReferenceRun,
    ReleaseProject,
    assert_clean_pass,
    assert_none_ran,
    kill_group,
    port_closed,
    process_group_gone,
)
from .recorded_target import RecordedTarget


def test_example_release_promotes(reference_run: ReferenceRun) -> None:
    result = reference_run.result
    outcomes = assert_clean_pass(result)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["verdict file: *verdict.json",  # the gate's line comes last
                                 f"releasetest: PROMOTE port-weather@* stage=devtest -> production: "
                                 f"{outcomes['passed']} passed*"])
    assert result.outlines[-1].startswith("releasetest: PROMOTE port-weather@")
    verdict = reference_run.verdict()
    assert verdict["decision"] == "PROMOTE"
    assert verdict["exit_status"] == 0
    assert verdict["release"]["id"] == load_release(reference_run.release / "release.toml").release_id
    assert {a["name"]: a["version"] for a in verdict["release"]["artifacts"]} == {
        "model-scaler": "1", "support-vector-classifier": "1"}
    assert set(verdict["suites"]) == {"smoke", "acceptance", "schema", "load", "drift", "shadow"}
    assert all(s["failed"] == s["errors"] == 0 and s["passed"] > 0 for s in verdict["suites"].values())
    assert verdict["promote_to"] == "production"
    assert verdict["endpoint"]["scoring_uri"].startswith("http://127.0.0.1:")
    assert process_group_gone(verdict["endpoint"]["pid"])
    assert port_closed(verdict["endpoint"]["port"])


def test_sha256_mismatch_stops_before_deploy(release_project: ReleaseProject) -> None:
    onnx = release_project.release / "models" / "support-vector-classifier.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    result = release_project.run_inprocess("--release-stage", "devtest")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert ("release.toml: artifacts[support-vector-classifier].files[0].sha256: artifact support-vector-classifier "
            "version 1: models/support-vector-classifier.onnx has sha256 ") in err
    assert "the manifest pins 6811c8b0" in err
    assert "bump version and pin it with releasetest hash --write release.toml" in err
    assert "Traceback" not in err
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK"
    assert verdict["reasons"][0].startswith("configuration error:")
    assert "configuration error:" in (release_project.root / "releasetest-out" / "report.html").read_text()
    assert not (release_project.root / "releasetest-out" / "server-devtest.log").exists(), "a server was started"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("  cpu: 1\n", "  cpuu: 1\n",
         "*AciDeploymentConfig.yml: containerResourceRequirements.cpuu: unknown key "
         "(fix: did you mean 'cpu'?)"),
        ("authEnabled: False", "authEnabled: maybe",
         "*AciDeploymentConfig.yml: authEnabled: expected True or False, got str 'maybe'*"),
        ("  cpu: 1\n", "  cpu: [1\n", "*AciDeploymentConfig.yml: line * column *: invalid YAML*"),
    ],
    ids=["unknown-key", "wrong-type", "syntax"],
)
def test_bad_deployment_config_names_file_and_key(release_project: ReleaseProject, old: str, new: str,
                                                  expected: str) -> None:
    release_project.edit("AciDeploymentConfig.yml", old, new)
    result = release_project.run_inprocess("--release-stage", "devtest")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])
    assert "Traceback" not in result.stderr.str()


def test_unknown_stage_is_a_usage_error(release_project: ReleaseProject) -> None:
    result = release_project.run_inprocess("--release-stage", "qa")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert ("release.toml: stages.qa: stage 'qa' is not defined (fix: use one of: devtest, production, "
            "or add [stages.qa])") in result.stderr.str()


def test_bad_option_value_is_a_usage_error(release_project: ReleaseProject) -> None:
    result = release_project.run_inprocess("--release-stage", "devtest", "--release-target", "cloud")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--release-target: unknown target 'cloud'*"])


def test_help_lists_every_option(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_inprocess("--help")
    result.stdout.fnmatch_lines([
        "release gate (releasetest):",
        "*--release-stage=NAME*", "*--release-config=PATH*", "*--release-target=local|url*",
        "*--release-url=URL*", "*--release-key-env=VAR*", "*--release-verdict=PATH*", "*--release-keep*",
        "*--release-ready-timeout=SECONDS*", "*--release-require=SUITES*", "*--release-port=PORT*",
    ])
    result.stdout.fnmatch_lines(["*release_stage (string):*", "*release_testpaths (paths):*"])


def test_without_stage_the_plugin_stays_out_of_the_way(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    assert True\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "releasetest-out").exists()


def test_xdist_deploy_failure_fails_every_worker_test(release_project: ReleaseProject,
                                                      recorded: RecordedTarget) -> None:
    """The controller's deploy failure reaches the workers: each of their tests is not run because of it.
    (A local server's failure cause is tested end to end in test_faults.py and test_terminal.py.)"""
    pytest.importorskip("xdist")
    recorded.flip = True
    result = release_project.run_inprocess("--release-stage", "devtest", *recorded.args, "-n", "2", "-m", "smoke")
    assert_none_ran(result, release_project.verdict())
    result.stdout.fnmatch_lines(["*the endpoint is up, but * golden rows differ from the training-time predictions*"])
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK" and verdict["deploy"]["answered"] is True
    assert verdict["reasons"][0].startswith("the endpoint is up, but ")
    not_run = sum(s["not_run"] for s in verdict["suites"].values())
    assert not_run > 0 and f" {not_run} not run (endpoint not ready) in " in result.outlines[-2]
    assert recorded.requests.count("GET /") == 1, "the controller deploys once, the workers do not"


def test_user_tests_hooks_and_interruption(release_project: ReleaseProject, recorded: RecordedTarget) -> None:
    """A team's own tests run against the endpoint (in their own pytest); a verdict hook (a plugin:
    the gate loads no conftest.py) can add findings; an interrupted team pytest still leaves a BLOCK.
    (Ctrl-C and SIGTERM on the gate itself: test_faults.py.)"""
    release_project.pytester.makepyfile(verdict_hook="""
        def pytest_releasetest_verdict(config, verdict):
            verdict["findings"]["hook"] = {"seen": verdict["decision"]}
    """)
    release_project.pytester.syspathinsert()
    release_project.pytester.makepyfile(test_own="""
        def test_interrupt(endpoint):
            raise KeyboardInterrupt
    """)
    result = release_project.run_inprocess("-p", "verdict_hook", "--release-stage", "devtest", *recorded.args,
                                           "test_own.py", "-m", f"smoke or {NO_BUILTIN_SUITE[1]}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK"
    assert any("the team's pytest ended with exit status 2" in r for r in verdict["reasons"]), verdict["reasons"]
    assert verdict["findings"]["hook"] == {"seen": "BLOCK"}
    assert verdict["endpoint"]["scoring_uri"] == f"{recorded.url}/score", "the test ran against the endpoint"


def test_an_endpoint_no_selected_test_uses_is_stopped_after_collection(release_project: ReleaseProject) -> None:
    """The server starts while pytest collects; when the selection needs no endpoint it is stopped
    then, and the verdict records no endpoint."""
    result = release_project.run("--release-stage", "devtest", "-m", "none_of_them")
    text = "\n".join(result.outlines)
    assert "releasetest: deploying port-weather@" in text
    assert "releasetest: no selected test uses the endpoint: stopped it" in text
    verdict = release_project.verdict()
    assert verdict["endpoint"] is None and verdict["deploy"]["left_behind"] == {}
    assert verdict["deploy"]["ok"] is False and verdict["deploy"]["error"] is None


def test_suite_marker_with_arguments_is_refused(release_project: ReleaseProject, recorded: RecordedTarget) -> None:
    """The check happens in the team's own pytest, which ends with a usage error: the gate BLOCKs naming it."""
    release_project.pytester.makepyfile(test_own="""
        import pytest

        @pytest.mark.load(rate=5)
        def test_x():
            pass
    """)
    result = release_project.run_inprocess("--release-stage", "devtest", *recorded.args, "test_own.py", "-k", "test_x")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    reasons = " ".join(release_project.verdict()["reasons"])
    assert "exit status 4: test_own.py::test_x: @pytest.mark.load takes no arguments" in reasons, reasons


def test_missing_required_suite_blocks(release_project: ReleaseProject, recorded: RecordedTarget) -> None:
    result = release_project.run_inprocess("--release-stage", "devtest", *recorded.args, "-m", "acceptance")
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK"
    assert "required suite 'smoke' did not run (no test of it ran)" in verdict["reasons"]
    assert result.ret != 0


def test_keep_leaves_endpoint_up_and_url_target_tests_it(release_project: ReleaseProject) -> None:
    """--release-keep leaves a live endpoint; a second run tests it through --release-target url."""
    smoke = ("--release-require", "smoke", "-m", "smoke")
    first = release_project.run("--release-stage", "devtest", "--release-keep", *smoke)
    assert first.ret == 0
    kept = release_project.verdict()["endpoint"]
    try:
        first.stdout.fnmatch_lines([f"endpoint kept running: {kept['scoring_uri']} (stop it with: kill -TERM -*"])
        assert not process_group_gone(kept["pid"])
        second = release_project.run_inprocess("--release-stage", "devtest", "--release-target", "url",
                                               f"--release-url={kept['scoring_uri']}", *smoke)
        assert_clean_pass(second)
        verdict = release_project.verdict()
        assert verdict["decision"] == "PROMOTE"
        assert verdict["target"] == "url"
        assert not process_group_gone(kept["pid"]), "the url target must not stop an endpoint it does not own"
    finally:
        kill_group(kept["pid"])
