"""A release project laid out in a temp dir, and helpers to run pytest on it in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from releasetest.endpoint.process import group_pids

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "port-weather"


@dataclass
class ReleaseProject:
    pytester: pytest.Pytester
    root: Path

    @property
    def release(self) -> Path:
        return self.root / "release"

    @property
    def verdict_path(self) -> Path:
        return self.root / "releasetest-out" / "verdict.json"

    def verdict(self) -> dict[str, Any]:
        return json.loads(self.verdict_path.read_text())

    def run(self, *args: str, timeout: float = 240) -> pytest.RunResult:
        return self.pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=timeout)

    def edit(self, relpath: str, old: str, new: str) -> None:
        path = self.release / relpath
        text = path.read_text()
        assert old in text, f"{old!r} not in {path}"
        path.write_text(text.replace(old, new, 1))


@pytest.fixture
def release_project(pytester: pytest.Pytester) -> ReleaseProject:
    """A copy of the example release (without its raw training data) and an ini pointing at it."""
    shutil.copytree(EXAMPLE, pytester.path / "release",
                    ignore=shutil.ignore_patterns("weather.csv", "__pycache__", "train.py"))
    # Most tests run one suite (-m) and read verdict.json: let partial runs write it.
    pytester.makeini("[pytest]\nrelease_config = release/release.toml\nrelease_partial_ok = true\n")
    return ReleaseProject(pytester, pytester.path)


def process_group_gone(pid: int) -> bool:
    """True when no live process of the server's group (gunicorn master or workers) is left.

    Zombies do not count: in a container whose init does not reap, an orphaned worker that was
    killed stays a zombie, holding no port and no memory.
    """
    return not group_pids(pid)


def port_closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def assert_clean_pass(result: pytest.RunResult) -> dict[str, int]:
    """Every collected test passed or skipped (counts change as suites grow; failures must not)."""
    outcomes = result.parseoutcomes()
    bad = {k: v for k, v in outcomes.items() if k in ("failed", "error", "errors") and v}
    assert not bad and outcomes.get("passed", 0) > 0, f"{outcomes}\n{result.stdout.str()[-3000:]}"
    return outcomes


def assert_all_errored(result: pytest.RunResult) -> None:
    """Deploy failed: every test errors in setup, none passes or fails on its own."""
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors", outcomes.get("error", 0)) > 0, outcomes
    assert not outcomes.get("passed") and not outcomes.get("failed"), outcomes


BUSY_TEST = """
    import time

    def test_busy(scoring_client, holdout):
        rows = holdout.rows[:4].tolist()
        print("releasetest-test-running", flush=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            scoring_client.score(rows)
"""


def signal_while_busy(project: ReleaseProject, sig: int, *args: str, timeout: float = 120) -> tuple[int, str]:
    """Run a release test that keeps sending traffic, send ``sig`` to pytest once it is running,
    and return pytest's exit code and output. Synchronised on the test's own output line."""
    project.pytester.makepyfile(test_busy=BUSY_TEST)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s", "--release-stage", "devtest", *args,
         "test_busy.py"],
        cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # blocks until the test is running; ends if pytest exits first
            if "releasetest-test-running" in line:
                proc.send_signal(sig)
                break
        output, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, output
