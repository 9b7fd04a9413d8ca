"""The release's code stays out of the process that decides (issue 22): the team's conftest files,
an ini file in the release folder and a start-up hook the entry script writes cannot turn a failing
release into a PROMOTE; the team's own tests still run (in their own pytest) and their failures BLOCK.

Each route runs on a copy of the example whose acceptance threshold it cannot meet, so the honest
verdict is BLOCK. The conftest and ini routes gate the recorded target (the team's pytest is a
child process either way); the start-up hook needs the real server (the entry script writes it).
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from releasetest.separation import (
    TEAM_SUITE,
    add_findings,
    gate_rerun_command,
    ini_plugins,
    preloaded_reason,
    secret_files,
    startup_changes,
    team_env,
    team_outcomes,
)

from .conftest import NO_BUILTIN_SUITE, ReleaseProject, child_env, default_sigint
from .recorded_target import RecordedTarget

#: Replaces every collected test's body with one that passes (the issue's conftest and plugin).
EVERYTHING_PASSES = """
def pytest_collection_modifyitems(items):
    for item in items:
        item.runtest = lambda: None
"""


#: The acceptance suite and the team's unmarked tests: enough to see a failing release blocked.
ONLY_ACCEPTANCE_AND_UNMARKED = ("-m", f"acceptance or {NO_BUILTIN_SUITE[1]}", "--release-require=acceptance")


def fail_acceptance(project: ReleaseProject) -> None:
    project.edit("release.toml", "accuracy = { min = 0.93,", "accuracy = { min = 0.999,")


def test_a_conftest_beside_the_teams_tests_cannot_promote_a_failing_release(release_project: ReleaseProject,
                                                                          recorded: RecordedTarget) -> None:
    fail_acceptance(release_project)
    tests = release_project.release / "tests"
    tests.mkdir()
    (tests / "conftest.py").write_text(EVERYTHING_PASSES)
    (tests / "test_mine.py").write_text("def test_mine(scoring_client):\n    assert False\n")
    result = release_project.run_inprocess("--release-stage", "devtest", *recorded.args, "release/tests",
                                           *ONLY_ACCEPTANCE_AND_UNMARKED)
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK", verdict["reasons"]
    assert any(r.startswith("acceptance: ") for r in verdict["reasons"]), verdict["reasons"]
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert verdict["suites"]["other"]["passed"] == 1, "the team's test ran, in its own pytest, with its conftest"


def test_an_ini_file_in_the_release_folder_is_ignored(release_project: ReleaseProject,
                                                      recorded: RecordedTarget) -> None:
    fail_acceptance(release_project)
    release = release_project.release
    (release / "everything_passes.py").write_text(EVERYTHING_PASSES)
    (release / "pytest.ini").write_text("[pytest]\naddopts = -p everything_passes\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--release-stage", "devtest",
                           *recorded.args, "-m", "acceptance", "--release-require=acceptance", "--release-partial-ok"],
                          cwd=release, env=child_env(), capture_output=True, text=True,
                          timeout=240, preexec_fn=default_sigint)
    verdict = json.loads((release / "releasetest-out" / "verdict.json").read_text())
    assert verdict["decision"] == "BLOCK", verdict["reasons"]
    assert any(r.startswith("acceptance: ") for r in verdict["reasons"]), verdict["reasons"]
    assert done.returncode == 1, done.stdout[-3000:]
    assert f"releasetest: ignoring {release / 'pytest.ini'}" in done.stdout + done.stderr
    assert any(w.startswith(f"ignored {release / 'pytest.ini'}") for w in verdict["warnings"])
    preloaded = [r for r in verdict["reasons"] if r.startswith("release code ran in the gate's own process")]
    assert preloaded and f"plugin everything_passes (-p in the addopts of {release / 'pytest.ini'})" in preloaded[0]
    assert f"module everything_passes ({release / 'everything_passes.py'})" in preloaded[0], preloaded


def test_release_code_loaded_into_the_deciding_process_blocks(release_project: ReleaseProject,
                                                              recorded: RecordedTarget) -> None:
    """A plugin module from the release folder (here ``-p`` on the command line; an ini above the
    release folder or ``python -m pytest`` from inside it would do the same) ran with the CI's
    environment: an otherwise passing release BLOCKs, naming it."""
    (release_project.release / "snoop.py").write_text("import os\nSEEN = os.environ.get('RELEASETEST_SIGNING_KEY')\n")
    release_project.pytester.syspathinsert(release_project.release)
    release_project.run_inprocess("--release-stage", "devtest", *recorded.args, "-m", "smoke",
                                  "--release-require=smoke")
    honest = release_project.verdict()
    assert honest["decision"] == "PROMOTE", honest["reasons"]
    result = release_project.run_inprocess("--release-stage", "devtest", *recorded.args, "-p", "snoop", "-m", "smoke",
                                           "--release-require=smoke")
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK" and result.ret == pytest.ExitCode.TESTS_FAILED
    assert verdict["reasons"] == [preloaded_reason([f"module snoop ({release_project.release / 'snoop.py'})"])]


def test_the_plugins_an_ini_file_imports() -> None:
    assert ini_plugins(["-ra", "-p", "evil", "-pother", "-p", "no:cacheprovider", "--strict-markers", "-p"]) == [
        "evil", "other"]
    assert gate_rerun_command(["-x"], Path("/e.ini"), Path("/r"))[1:2] == ["-c"], "the re-run must not run -m pytest"


def test_honest_own_tests_run_in_their_own_pytest_without_secrets_and_their_failures_block(
        release_project: ReleaseProject, recorded: RecordedTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELEASETEST_SIGNING_KEY", "gate-only")
    monkeypatch.setenv("GITHUB_TOKEN", "gate-only")
    tests = release_project.release / "tests"
    tests.mkdir()
    (tests / "conftest.py").write_text("import pytest\n\n@pytest.fixture\ndef rows(holdout):\n"
                                       "    return holdout.rows[:2]\n")
    (tests / "test_mine.py").write_text(
        "import os, pytest\n\n"
        "@pytest.mark.smoke\n"
        "def test_scores(scoring_client, rows, release_record):\n"
        "    release_record('mine', len(scoring_client.score(rows).predictions))\n"
        "    assert 'RELEASETEST_SIGNING_KEY' not in os.environ and 'GITHUB_TOKEN' not in os.environ\n")
    (tests / "test_broken.py").write_text("def test_broken():\n    assert 1 == 2, 'the team says no'\n")
    result = release_project.run_inprocess("--release-stage", "devtest", *recorded.args, "release/tests/test_mine.py",
                                           "-m", "smoke", "--release-require=smoke")
    verdict = release_project.verdict()
    assert verdict["decision"] == "PROMOTE", verdict["reasons"]
    assert result.ret == pytest.ExitCode.OK
    assert verdict["findings"]["smoke"]["mine"] == 2
    assert "release/tests/test_mine.py::test_scores" in verdict["suites"]["smoke"]["tests"]
    result = release_project.run_inprocess("--release-stage", "devtest", *recorded.args, "release/tests",
                                           "-m", f"smoke or {NO_BUILTIN_SUITE[1]}",
                                           "--release-require=smoke")
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK"
    assert "test_broken: the team says no" in verdict["reasons"], verdict["reasons"]
    assert result.ret == pytest.ExitCode.TESTS_FAILED


HOOK = """
def pytest_collection_modifyitems(items):
    for item in items:
        item.runtest = lambda: None
"""

#: The entry script's init() leaves a start-up hook in its interpreter's site-packages: every
#: Python started afterwards from it (the xdist workers) loads a plugin that passes every test.
WRITES_A_STARTUP_HOOK = '''
def _leave_startup_hook():
    import site
    from pathlib import Path
    try:
        folder = Path(site.getsitepackages()[0])
        (folder / "gate_hook.py").write_text({hook!r})
        (folder / "zz_gate_hook.pth").write_text("import os; os.environ['PYTEST_PLUGINS'] = 'gate_hook'\\n")
    except OSError:
        pass  # a read-only site-packages (the sandbox) stops this route earlier


def init():
    _leave_startup_hook()
'''


@pytest.mark.long
def test_a_startup_hook_written_by_the_entry_script_cannot_promote_a_failing_release(
        release_project: ReleaseProject, tmp_path: Path) -> None:
    """In a venv of its own (the entry script writes into its site-packages), which sees this one's;
    without the sandbox (which makes site-packages read-only), so the check at the decision is what stops it."""
    pytest.importorskip("xdist")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    own_site = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                              capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    Path(own_site, "_parent.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    fail_acceptance(release_project)
    release_project.edit("score.py", "def init():", WRITES_A_STARTUP_HOOK.format(hook=HOOK) + "\n\ndef _init():")
    release_project.edit("score.py", "    _leave_startup_hook()\n",
                         "    _leave_startup_hook()\n    _init()\n")
    done = subprocess.run([str(python), "-m", "pytest", "-p", "no:cacheprovider", "--release-stage", "devtest",
                           "-n", "2", "-m", "acceptance", "--release-require=acceptance",
                           # the sandbox would refuse the write; this is the route without one
                           "--release-isolation=off"],
                          cwd=release_project.root, env=child_env(), capture_output=True, text=True, timeout=400,
                          preexec_fn=default_sigint)
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK", (verdict["reasons"], done.stdout[-3000:])
    assert Path(own_site, "zz_gate_hook.pth").is_file(), "the entry script wrote its hook (no sandbox here)"
    assert any("zz_gate_hook.pth added" in r for r in verdict["reasons"]), verdict["reasons"]
    assert done.returncode == 1


def test_startup_changes_name_each_file() -> None:
    before = {"/s/a.pth": "1", "/s/b.pth": "2", "/s/mod": "present"}
    after = {"/s/a.pth": "1", "/s/b.pth": "3", "/s/c.pth": "4"}
    assert startup_changes(before, after) == ["/s/b.pth changed", "/s/c.pth added", "/s/mod removed"]
    assert startup_changes(before, dict(before)) == []


def test_the_teams_pytest_can_add_failures_never_remove_them(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    assert team_outcomes(out, 0).problems == ["the team's pytest left no readable results (FileNotFoundError), "
                                              "exit status 0"]
    out.write_text(json.dumps({"reports": [], "findings": {}}))
    assert team_outcomes(out, 1).problems == ["the team's pytest exited 1 but reported no failure"]
    assert team_outcomes(out, 4).problems == ["the team's pytest ended with exit status 4"]
    assert team_outcomes(out, 5).problems == []
    key_file = tmp_path / "signing.pem"
    key_file.write_text("-----BEGIN PRIVATE KEY-----\n")
    gate_env = {"RELEASETEST_SIGNING_KEY": "k", "AZURE_CLIENT_SECRET": "s", "SYSTEM_ACCESSTOKEN": "t",
                "PATH": "/bin", "RELEASETEST_STAGE": "devtest", "PYTEST_ADDOPTS": "-p gate_only", "CI_JOB_ID": "7",
                "RELEASETEST_APPROVAL_KEY_FILE": str(key_file), "HOME": "/root"}
    env = team_env(gate_env, tmp_path / "in.json", tmp_path / "team")
    assert env == {"PATH": "/bin", "RELEASETEST_STAGE": "devtest", "RELEASETEST_TEAM_INPUT": str(tmp_path / "in.json"),
                   "HOME": str(tmp_path / "team"), "TMPDIR": "/tmp"}
    assert secret_files(gate_env) == [key_file.resolve()]
    assert TEAM_SUITE == "own tests"
    recorded = {"smoke": {"golden": "built-in"}}
    assert add_findings(recorded, {"smoke": {"golden": "team", "mine": 1}}) == ["smoke.golden"]
    assert recorded == {"smoke": {"golden": "built-in", "mine": 1}}
