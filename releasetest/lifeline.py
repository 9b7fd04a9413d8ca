"""Child processes that die with the gate, however the gate dies (SIGKILL and the OOM killer included).

Two mechanisms, because neither covers every case alone:

- **Lifeline pipe** (portable): the parent keeps the write end of a pipe, the child gets the read
  end. The kernel closes the write end when the parent exits for any reason, so the child reads
  EOF and stops its whole process group. Used by children that run Python we control (the
  local server); see :func:`watch`.
- **``PR_SET_PDEATHSIG``** (Linux): the kernel sends the child a signal when its parent dies.
  It fires when the *thread* that forked the child ends, not the process, so it is only set when
  the fork happens on the main thread (whose end is the process's end); elsewhere the lifeline
  alone applies. It also covers programs that cannot watch a pipe (pip, uv, Locust).

Both are inherited by nothing: the pipe's write end is close-on-exec, and the death signal is
cleared in a forked child, so a server's workers set their own (:func:`die_with_parent`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

#: Environment of a child: the lifeline's read-end file descriptor.
ENV_FD = "RELEASETEST_LIFELINE_FD"
#: Environment of a child: the pid it must die with (checked once, closing the fork-to-prctl race).
ENV_PARENT = "RELEASETEST_LIFELINE_PARENT"

_PR_SET_PDEATHSIG = 1


@functools.cache
def _prctl() -> Any:
    """libc's prctl, or None off Linux. Loaded before any fork: a forked child must not load libraries."""
    if not sys.platform.startswith("linux"):
        return None
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl


def _prctl_pdeathsig(sig: int) -> bool:
    """Ask the kernel for ``sig`` when our parent (thread) dies; False where there is no prctl."""
    prctl = _prctl()
    return prctl is not None and prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def die_with_parent(expected_parent: int | None = None, sig: int = signal.SIGTERM) -> None:
    """In a child: receive ``sig`` when the parent dies, and die now if it already has.

    ``expected_parent`` closes the race of a parent that dies between fork and this call (the
    child is then already adopted by another process and would never be signalled).
    """
    if _prctl_pdeathsig(sig) and expected_parent is not None and os.getppid() != expected_parent:
        os.kill(os.getpid(), sig)


def _preexec(parent: int) -> Callable[[], None]:
    def setup() -> None:
        die_with_parent(parent, signal.SIGKILL)

    return setup


def child_kwargs(**popen: Any) -> dict[str, Any]:
    """``subprocess`` keyword arguments for a child that cannot watch a pipe (pip, uv, Locust).

    On Linux, on the main thread, the child gets ``PR_SET_PDEATHSIG`` = SIGKILL. Elsewhere it
    gets nothing more: it is bounded by the caller's own timeout.
    """
    if _prctl() is not None and threading.current_thread() is threading.main_thread():
        popen["preexec_fn"] = _preexec(os.getpid())
    return popen


class Lifeline:
    """The parent's side: a pipe whose write end this process holds until :meth:`close` or death."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()  # both close-on-exec (PEP 446)

    def child_env(self) -> dict[str, str]:
        env = {ENV_FD: str(self.read_fd)}
        if threading.current_thread() is threading.main_thread():
            env[ENV_PARENT] = str(os.getpid())
        return env

    def popen_kwargs(self, env: dict[str, str], **popen: Any) -> dict[str, Any]:
        """Keyword arguments for ``subprocess.Popen`` that hand the read end to the child."""
        return {**popen, "env": {**env, **self.child_env()}, "pass_fds": (self.read_fd,)}

    def started(self) -> None:
        """After the child started: the parent needs only the write end."""
        if self.read_fd >= 0:
            os.close(self.read_fd)
            self.read_fd = -1

    def close(self) -> None:
        """Cut the lifeline: the child stops its process group."""
        self.started()
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1


def _stop_group_on_eof(fd: int) -> None:
    while True:
        try:
            if not os.read(fd, 4096):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    # Our own session (the parent started us with start_new_session): the group is us and our
    # workers. Nobody waits for this server any more, so nothing is gained by a graceful stop.
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def watch(environ: dict[str, str] | None = None) -> bool:
    """In a child started with a :class:`Lifeline`: die with the parent. False when not given one."""
    env = os.environ if environ is None else environ
    fd = env.get(ENV_FD)
    parent = env.get(ENV_PARENT)
    if parent:
        die_with_parent(int(parent))
    if not fd:
        return False
    threading.Thread(target=_stop_group_on_eof, args=(int(fd),), name="releasetest-lifeline", daemon=True).start()
    return True
