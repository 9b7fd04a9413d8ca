"""Cross-process counting semaphore: ``n`` slot files, each held by ``flock`` while a request is in flight.

Both sides of the local endpoint's admission rule use it: the server (every gunicorn worker and
thread) counts the scoring requests it admits, and the gate's own scoring clients (every xdist
worker and acceptance thread) count the requests they send, so the gate never sends more than
the endpoint admits. ``flock`` locks belong to an open file description: each take opens its own,
so threads of one process conflict as processes do, and a process that dies releases its slots.
Standard library only: the server imports it in the release's own (isolated) environment too.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class Slots:
    """``n`` slots in ``folder`` (created on first use)."""

    def __init__(self, folder: str | Path, n: int):
        self.folder = Path(folder)
        self.n = n

    def _open(self, i: int) -> int:
        self.folder.mkdir(parents=True, exist_ok=True)
        return os.open(self.folder / f"slot-{i}", os.O_RDWR | os.O_CREAT, 0o644)

    def try_take(self) -> int | None:
        """A held slot (its descriptor), or None when all ``n`` are held."""
        for i in range(self.n):
            fd = self._open(i)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                os.close(fd)
        return None

    def take(self, hint: int = 0) -> int:
        """A held slot, waiting for slot ``hint % n`` when all are held (each holder is bounded
        by its own request timeout, so the wait is too)."""
        fd = self.try_take()
        if fd is not None:
            return fd
        fd = self._open(hint % self.n)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    @staticmethod
    def release(fd: int) -> None:
        os.close(fd)  # closing releases the flock
