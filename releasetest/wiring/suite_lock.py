"""A cross-process readers-writer lock so the load suite never overlaps another suite under xdist.

Load figures are only true when nothing else runs against the endpoint or the CPU; and the other
suites' timeouts are only fair when no load test is saturating the server. Each xdist worker holds
the lock around every test it runs: shared for ordinary tests, exclusive for load tests. It is
``flock`` on a file in the run's scratch folder, which the controller makes before the workers
start and removes at the end, so it covers exactly the processes of one run and leaves nothing behind.

Plain ``flock`` lets a stream of shared holders starve an exclusive waiter, so a second lock, the
turnstile, orders arrivals: everyone passes it on the way in, and a writer keeps it until it owns
the main lock, which stops new readers from slipping ahead of it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def suite_lock(path: Path, exclusive: bool) -> Iterator[None]:
    """Hold the run's suite lock, shared or exclusive, for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    gate = os.open(f"{path}.turnstile", os.O_RDWR | os.O_CREAT, 0o644)
    main = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(main, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
        yield
    finally:
        os.close(main)  # closing releases the flock
        os.close(gate)
