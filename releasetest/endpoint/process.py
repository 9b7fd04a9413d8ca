"""Process facts from /proc: whether a server still runs, its group's processes and memory."""

from __future__ import annotations

import os
import select
import time


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def catches(pid: int, signum: int) -> bool:
    """True while ``pid`` has a handler for ``signum`` (``SigCgt`` in /proc); False once it has
    exited or dropped the handler (a Python process does, as it shuts down)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except OSError:
        pass
    return False


def group_pids(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc: gunicorn master and workers."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def wait_group_gone(pgid: int, timeout_s: float) -> list[int]:
    """Wait (on pidfds, no polling) until no live process of the group is left, at most
    ``timeout_s``; return those still running then.

    A SIGKILLed process is still exiting when the signal is sent (freeing its memory takes a
    while; a PID namespace's init first waits for every process in its namespace), and teardown
    returns only once nothing of the server runs any more."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = group_pids(pgid)
        remaining = deadline - time.monotonic()
        if not left or remaining <= 0:
            return left
        fds = []
        for pid in left:
            try:
                fds.append(os.pidfd_open(pid))
            except ProcessLookupError:
                continue
        try:
            poller = select.poll()
            for fd in fds:
                poller.register(fd, select.POLLIN)
            if fds:
                poller.poll(max(1, int(remaining * 1000)))  # the next exit, then the group again
        finally:
            for fd in fds:
                os.close(fd)


def depths_below(root: int, pids: list[int]) -> dict[int, int]:
    """How many generations below ``root`` each of ``pids`` is (from the parent links in /proc);
    a pid not descended from ``root`` is left out."""
    parent = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                parent[pid] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    depths = {}
    for pid in parent:
        depth, at = 0, pid
        while at != root and at in parent and depth <= len(parent):
            depth, at = depth + 1, parent[at]
        if at == root:
            depths[pid] = depth
    return depths


def group_rss_bytes(pgid: int) -> int | None:
    """Resident memory of a process group; None where /proc is not available."""
    if not os.path.isdir("/proc"):
        return None
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in group_pids(pgid):
        try:
            with open(f"/proc/{pid}/statm", encoding="ascii") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    return total

