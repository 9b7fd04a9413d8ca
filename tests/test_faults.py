"""Fault matrix: every way a release run can go wrong ends in BLOCK, a named cause, nothing left behind.

Each case that deploys runs pytest in a subprocess against a real local endpoint (a broken copy of
the example release); the cases that must stop before anything is deployed run the gate in this
process. Each then checks, from the verdict: decision BLOCK, the cause in the reasons, the server
log tail where the server was involved, a non-zero exit, no process of the server's group alive,
the port closed and the temporary model directory gone.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from releasetest.endpoint.sandbox import probe

from .conftest import (
    BUSY_TEST,
    NO_BUILTIN_SUITE,
    ReleaseProject,
    assert_none_ran,
    port_closed,
    process_group_gone,
    signal_while_busy,
    wait_all_exit,
)

#: Bound on any one faulty run: a case that hangs fails here instead of hanging CI.
RUN_TIMEOUT_S = 120

#: The smoke suite alone: enough where a fault shows in any request, at a fraction of a whole gate.
SMOKE_ONLY = ("--release-stage", "devtest", "--release-require", "smoke", "-m", "smoke")


def assert_clean_block(project: ReleaseProject, result: pytest.RunResult | int, cause: str,
                       server_log: bool = True) -> dict[str, Any]:
    ret = result if isinstance(result, int) else result.ret
    assert ret != 0
    verdict = project.verdict()
    assert verdict["decision"] == "BLOCK"
    reasons = "\n".join(verdict["reasons"])
    assert cause in reasons, f"{cause!r} not in reasons:\n{reasons}"
    left = verdict["deploy"]["left_behind"]
    if server_log:
        assert left["pid"], "no server process was recorded"
        assert process_group_gone(left["pid"]), "a server process survived the run"
        assert port_closed(left["port"])
        assert not Path(left["model_dir"]).exists(), "the temporary model directory was left behind"
        assert Path(left["log"]).read_text().strip(), "the server log is empty"
    return verdict


def test_init_raises(release_project: ReleaseProject) -> None:
    release_project.edit("score.py", "def init():\n", "def init():\n    raise ValueError('scaler corrupt')\n")
    result = release_project.run_inprocess("--release-stage", "devtest")
    verdict = assert_clean_block(release_project, result, "init() raised ValueError: scaler corrupt")
    assert "ValueError: scaler corrupt" in verdict["deploy"]["log_tail"]
    assert result.ret == 1
    assert_none_ran(result, verdict)
    result.stdout.fnmatch_lines(["*BLOCK*init() raised ValueError: scaler corrupt*"])
    assert "init() raised ValueError: scaler corrupt" in verdict["reasons"][0]
    assert verdict["deploy"]["ok"] is False and verdict["endpoint"] is None
    assert "Worker failed to boot" in verdict["deploy"]["log_tail"]
    assert verdict["deploy"]["isolation"] == probe().line(), "the failed deploy does not say which sandbox it had"
    report = (release_project.root / "releasetest-out" / "report.html").read_text()
    assert "BLOCK · port-weather@" in report and 'id="log"' in report and "Worker failed to boot" in report
    summary = (release_project.root / "releasetest-out" / "summary.md").read_text()
    assert f"target local (isolation {probe().kind})" in summary


def test_entry_script_import_error(release_project: ReleaseProject) -> None:
    release_project.edit("score.py", "import joblib\n", "import joblib\nimport sklearn_extra_missing\n")
    result = release_project.run_inprocess("--release-stage", "devtest")
    assert_clean_block(release_project, result,
                       "No module named 'sklearn_extra_missing'")


def test_artifact_file_missing(release_project: ReleaseProject) -> None:
    (release_project.release / "models" / "model-scaler.pkl").unlink()
    result = release_project.run_inprocess("--release-stage", "devtest")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    verdict = assert_clean_block(release_project, result, "artifact file not found", server_log=False)
    assert verdict["deploy"]["left_behind"] == {}, "nothing may be deployed for a broken release"


def test_artifact_sha256_mismatch_loads_no_pickle(release_project: ReleaseProject) -> None:
    # A pickle that would leave a trace if anything unpickled it.
    marker = release_project.root / "unpickled"
    payload = (b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    scaler = release_project.release / "models" / "model-scaler.pkl"
    pinned = hashlib.sha256(scaler.read_bytes()).hexdigest()
    scaler.write_bytes(payload)
    result = release_project.run_inprocess("--release-stage", "devtest")
    assert_clean_block(release_project, result, f"the manifest pins {pinned[:8]}", server_log=False)
    assert not marker.exists(), "the pickle was loaded before its sha256 was checked"


def test_run_raises_for_some_inputs(release_project: ReleaseProject) -> None:
    release_project.edit("score.py", "    x = scaler.transform(",
                         "    if len(data) > 32:\n        raise MemoryError('batch too large')\n"
                         "    x = scaler.transform(")
    result = release_project.run_inprocess(*SMOKE_ONLY)
    assert_clean_block(release_project, result, "answered 500")


def test_run_hangs_past_scoring_timeout(release_project: ReleaseProject) -> None:
    release_project.edit("AciDeploymentConfig.yml", "authEnabled: False", "authEnabled: False\nscoringTimeoutMs: 500")
    release_project.edit("score.py", "    x = scaler.transform(",
                         "    if len(data) > 32:\n        import time; time.sleep(30)\n    x = scaler.transform(")
    result = release_project.run_inprocess(*SMOKE_ONLY)
    assert_clean_block(release_project, result, "Scoring timeout after 500 ms")


def test_server_killed_mid_suite_fails_the_rest_fast(release_project: ReleaseProject) -> None:
    """The server dies as the suites start (a plugin kills it once it is ready: the gate loads no
    conftest.py, and a team's own test would run only after the suites)."""
    release_project.pytester.makepyfile(kill_the_server="""
        import os, signal

        def pytest_releasetest_endpoint_ready(config, handle):
            os.killpg(handle.info["pid"], signal.SIGKILL)
    """)
    result = release_project.run("-p", "kill_the_server", "--release-stage", "devtest", "-p", "no:randomly",
                                 timeout=RUN_TIMEOUT_S)
    verdict = assert_clean_block(release_project, result, "endpoint died: server process")
    smoke = verdict["suites"]["smoke"]
    assert smoke["passed"] == 0 and smoke["failed"] + smoke["errors"] >= 7


def test_port_already_taken(release_project: ReleaseProject) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = release_project.run_inprocess("--release-stage", "devtest", f"--release-port={port}")
    verdict = assert_clean_block(release_project, result, f"port {port} is already taken on 127.0.0.1",
                                 server_log=False)
    assert process_group_gone(verdict["deploy"]["left_behind"]["pid"])


def test_run_returns_error_string_with_200(release_project: ReleaseProject) -> None:
    release_project.edit("score.py", "    x = scaler.transform(", "    return 'error'\n    x = scaler.transform(")
    result = release_project.run_inprocess("--release-stage", "devtest")
    verdict = assert_clean_block(release_project, result, "the endpoint is up, but scoring the golden rows failed: ")
    assert verdict["deploy"]["answered"] is True


def test_slower_to_start_than_the_readiness_bound(release_project: ReleaseProject) -> None:
    release_project.edit("score.py", "def init():\n", "def init():\n    import time; time.sleep(60)\n")
    result = release_project.run_inprocess("--release-stage", "devtest", "--release-ready-timeout=3")
    assert_clean_block(release_project, result, "not ready within 3 s")


@pytest.mark.parametrize(("selection", "caught_by"), [
    (("-m", "smoke or load"), "test_slo_at_expected_rate"),  # the load window measures it; no extra requests
    (("-m", "smoke"), "test_memory_stable_under_repeated_requests"),  # no load window: the smoke burst
], ids=["load-window", "smoke-only"])
def test_memory_growth_per_request(release_project: ReleaseProject, selection: tuple[str, ...],
                                   caught_by: str) -> None:
    release_project.edit("score.py", "    x = scaler.transform(",
                         "    _LEAK.append(bytearray(1 << 20))\n    x = scaler.transform(")
    release_project.edit("score.py", "scaler = None\n", "scaler = None\n_LEAK = []\n")
    result = release_project.run_inprocess("--release-stage", "devtest", *selection)
    verdict = assert_clean_block(release_project, result, "server memory grew")
    assert any(caught_by in r and "server memory grew" in r for r in verdict["reasons"]), verdict["reasons"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_a_running_suite(release_project: ReleaseProject, sig: signal.Signals) -> None:
    """The runner is stopped while a test is sending traffic: teardown and a BLOCK verdict follow."""
    returncode, output = signal_while_busy(release_project, sig, timeout=RUN_TIMEOUT_S)
    # pytest itself exits 1 when the interrupt lands on a bytecode CPython gives no line number
    # (its KeyboardInterrupt report computes ``tb_lineno - 1`` on None): rare, and after the verdict.
    pytest_crashed = "tb_lineno - 1" in output and "TypeError: unsupported operand" in output
    assert returncode == pytest.ExitCode.INTERRUPTED or pytest_crashed, output
    cause = "SIGTERM received" if sig == signal.SIGTERM else "KeyboardInterrupt"
    assert_clean_block(release_project, returncode, f"run interrupted: {cause}")


def _descendants(root: int) -> list[int]:
    """Every live process below ``root`` (server, gunicorn workers), from the parent links in /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", encoding="ascii") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs Linux pidfds to wait for foreign processes")
def test_sigkill_leaves_nothing_behind(release_project: ReleaseProject, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL of pytest mid-run (a CI timeout, the OOM killer): the server and its workers die with it,
    and the next run removes the work folder and says so."""
    tmp = release_project.root / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    release_project.pytester.makepyfile(test_busy=BUSY_TEST)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s", "--release-stage", "devtest",
         *NO_BUILTIN_SUITE, "test_busy.py"],
        cwd=release_project.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    tree: list[int] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the endpoint is up and serving once the test says so
            if "releasetest-test-running" in line:
                tree = _descendants(proc.pid)
                proc.kill()
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=RUN_TIMEOUT_S)
    assert proc.returncode == -signal.SIGKILL, "pytest ended before the endpoint served"
    assert tree, "no server process was started"
    survivors = wait_all_exit(tree, timeout_s=30)
    for pid in survivors:  # leave the machine clean even when the assertion below fails
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not survivors, f"processes of the killed run still alive after 30 s: {survivors}"
    left = sorted(tmp.glob("releasetest-*"))
    assert len(left) == 2, f"expected the killed run's work folders (server, team's tests), found {left}"

    release_project.pytester.makepyfile(test_once="""
        def test_once(scoring_client, holdout):
            scoring_client.score(holdout.rows[:2].tolist())
    """)
    release_project.run("--release-stage", "devtest", *NO_BUILTIN_SUITE, "test_once.py", timeout=RUN_TIMEOUT_S)
    assert not any(p.exists() for p in left), "the next run did not remove the killed run's work folders"
    warnings = release_project.verdict()["warnings"]
    assert any(f"removed 2 work folder(s) left by killed runs in {tmp}" in w and all(p.name in w for p in left)
               for w in warnings), warnings
