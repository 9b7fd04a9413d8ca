"""One gate at a time per output folder: two CI jobs in one checkout must not mix their verdicts.

The gate that starts second waits for the first, saying so in one line, on an exclusive ``flock``
of ``.gate.lock`` beside the verdict (held from configure to unconfigure, released by the kernel
if the holder is killed). Jobs that should run side by side give each its own ``--release-verdict``
folder, and then never wait.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

LOCK_NAME = ".gate.lock"


def acquire_gate_lock(folder: Path, say: Callable[[str], None]) -> int:
    """Hold the output folder's gate lock, waiting (after one line) while another gate holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            say(f"releasetest: another gate (pid {holder}) is writing to {folder}; waiting for it to finish "
                "(give each job its own --release-verdict folder to run them side by side)")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def release_gate_lock(fd: int) -> None:
    os.close(fd)  # closing releases the flock
