"""Two gates in one checkout at once: the second waits for the first's output folder, and says so."""

from __future__ import annotations

import os
import subprocess
import sys

from releasetest.wiring.gate_lock import acquire_gate_lock, release_gate_lock

from .conftest import ReleaseProject
from .recorded_target import RecordedTarget

RUN_TIMEOUT_S = 120


def test_second_gate_waits_for_the_output_folder(release_project: ReleaseProject, recorded: RecordedTarget) -> None:
    """This test holds the folder's gate lock as a first gate would; the real gate started next
    says it waits, writes nothing meanwhile, and finishes with its verdict once the lock is free.
    The lock is the plugin's, whatever the target: the gate tests the in-process ``recorded`` one."""
    out = release_project.root / "releasetest-out"
    first = acquire_gate_lock(out, lambda line: None)
    release_project.pytester.makepyfile(test_once="""
        def test_once(scoring_client, holdout):
            scoring_client.score(holdout.rows[:2].tolist())
    """)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--release-stage", "devtest", *recorded.args,
         "test_once.py", "-k", "test_once", "--release-partial-ok"],
        cwd=release_project.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seen = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the waiting line comes before anything is deployed or written
            seen.append(line)
            if "is writing to" in line:
                break
        assert f"releasetest: another gate (pid {os.getpid()}) is writing to {out}; waiting" in "".join(seen)
        assert not release_project.verdict_path.exists()
    finally:
        release_gate_lock(first)
        rest, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    assert release_project.verdict_path.exists(), "".join(seen) + rest
    assert release_project.verdict()["decision"] in ("PROMOTE", "BLOCK")
    assert "1 passed" in rest, rest
