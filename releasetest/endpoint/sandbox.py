"""The sandbox the release's own code runs in: what a release under test can see and change.

A release gate runs code someone else wrote (``score.py``, what it imports, the pickles it
loads), in the same job that holds the CI's secrets and writes the signed verdict. So the local
server starts under one of, best first:

- **bwrap** (bubblewrap, what Flatpak uses): a new PID namespace whose processes all die with
  the launcher (``--die-with-parent`` when started on the main thread, and the kernel kills a
  namespace whose first process exits), a fresh ``/proc`` (the gate's processes and their
  ``environ`` are not in it), no capabilities, a file system made of read-only binds of what
  the interpreter needs (system folders, the interpreter's prefixes, the import path, the
  release's code folder) plus the work folder (read-write) and a private ``/tmp``: nothing
  else of the host is visible.
- **unshare** (util-linux), where bwrap is missing or cannot start: the PID namespace, fresh
  ``/proc`` and ``--kill-child``, but the host's file system stays as writable as it is for the
  gate's user.
- **none**, with the reason (no user namespaces, e.g. a hardened runner).

In every case the environment is built from an allow-list (:func:`sandbox_env`): the CI's
secrets never reach the release. The network namespace is shared in every case: a new one
would have its own loopback, which the gate could not reach without a bridge; the server binds
127.0.0.1 only (:mod:`releasetest.endpoint.server.serve`).

Hand-written rather than a library: the only Python wrappers of bwrap build desktop sandboxes;
the argument list here is short and each part is a documented bwrap option.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from releasetest.errors import ConfigError

Kind = Literal["bwrap", "unshare", "none"]

#: Variables the gate passes on from its own environment (none of them can hold a secret).
PASSED_ENV = ("PATH", "LANG", "LANGUAGE", "TZ", "PYTHONPATH")
#: Host folders every interpreter and its libraries read (locale, CA bundle, shared libraries).
SYSTEM_DIRS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/sys")
#: Seconds the probe may take to start a sandbox that runs ``true``.
PROBE_TIMEOUT_S = 10.0

_WHAT = {
    "bwrap": "PID namespace, no capabilities, read-only file system except the work folder and a private /tmp",
    "unshare": "PID namespace, own /proc; file system not read-only (no bwrap)",
    "none": "",
}


@dataclass(frozen=True)
class Isolation:
    """Which sandbox is in force and why (the verdict's ``endpoint.isolation``)."""

    kind: Kind
    detail: str

    @property
    def server_depth(self) -> int:
        """Generations between the launched process and the server's master: bwrap's launcher
        and its init, unshare's launcher, or none."""
        return {"bwrap": 2, "unshare": 1, "none": 0}[self.kind]

    def line(self) -> str:
        """One line for the verdict, the report and the gate's output."""
        if self.kind == "none":
            return f"isolation: none ({self.detail}); environment allow-list only"
        return (f"isolation: {self.kind} ({_WHAT[self.kind]}; environment allow-list; "
                f"network shared, server bound to 127.0.0.1){self.detail}")


def _tries(argv: list[str]) -> str | None:
    """None when ``argv`` runs and exits 0; else why not, in a few words."""
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=PROBE_TIMEOUT_S,
                              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    said = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
    return said[-1] if said else f"exit {done.returncode}"


@functools.cache
def probe() -> Isolation:
    """The best sandbox this machine can make, tried once per process (a few ms each)."""
    reasons = []
    bwrap = shutil.which("bwrap")
    if bwrap:
        failed = _tries([bwrap, *_bwrap_flags(), "--ro-bind", "/", "/", *_bwrap_mounts(), "--", "true"])
        if failed is None:
            return Isolation("bwrap", "")
        reasons.append(f"bwrap cannot start: {failed}")
    else:
        reasons.append("bwrap not installed (Debian/Ubuntu package bubblewrap)")
    unshare = shutil.which("unshare")
    if unshare:
        failed = _tries([unshare, *_unshare_base(), "--", "true"])
        if failed is None:
            return Isolation("unshare", f"; {reasons[0]}")
        reasons.append(f"unshare cannot start: {failed}")
    else:
        reasons.append("unshare not installed")
    return Isolation("none", "; ".join(reasons))


#: What each CI image needs for ``--release-isolation required`` (one line, for the error).
NEEDS = ("install bubblewrap (apt-get install bubblewrap) and allow unprivileged user namespaces "
         "(Ubuntu 24.04: the bubblewrap package's AppArmor profile allows bwrap; containers: run with "
         "seccomp/AppArmor that permit unshare), or pass --release-isolation auto")


def choose(mode: str) -> Isolation:
    """The isolation ``--release-isolation`` asks for: ``off`` by the user's choice (recorded as
    such), ``auto`` the best this machine makes, ``required`` only bwrap (the one sandbox with a
    read-only file system), else a configuration error naming what is missing."""
    if mode == "off":
        return Isolation("none", "--release-isolation off")
    found = probe()
    if mode == "required" and found.kind != "bwrap":
        missing = found.detail.removeprefix("; ")
        raise ConfigError(None, "--release-isolation", f"required, but only {found.kind} is possible here ({missing})",
                          NEEDS)
    return found


def _bwrap_flags(detach: bool = False) -> list[str]:
    # --die-with-parent is PR_SET_PDEATHSIG, which fires when the *thread* that started bwrap ends:
    # off the main thread (a server started from a request handler) it would kill a server still in
    # use, so there only the lifeline ties the server to the gate (as in releasetest.lifeline).
    tied = not detach and threading.current_thread() is threading.main_thread()
    flags = ["--unshare-pid", "--die-with-parent"] if tied else ["--unshare-pid"]
    if os.geteuid() == 0:
        # root keeps every capability in the sandbox unless told: it could remount the binds writable.
        flags += ["--cap-drop", "ALL"]
    return flags


def _bwrap_mounts() -> list[str]:
    return ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]


def _unshare_base(detach: bool = False) -> list[str]:
    return ["--user", "--map-root-user", "--pid", "--fork", *([] if detach else ["--kill-child"]), "--mount-proc"]


def _interpreter_paths(python: str) -> list[str]:
    """What an interpreter reads: its venv, its base installation, and (for the gate's own) the import path."""
    paths = {str(Path(python).parent.parent), str(Path(os.path.realpath(python)).parent.parent)}
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        paths.update([sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix])
        paths.update(p for p in sys.path if p and os.path.exists(p))
        paths.update(filter(None, (sysconfig.get_paths().get(k) for k in ("purelib", "platlib"))))
    return sorted(paths)


def readable_paths(python: str, code_dirs: Iterable[str | Path]) -> list[str]:
    """The host paths bound read-only: system folders, the interpreter's, the code folders; parents first."""
    # releasetest's own folder: the server launcher is imported from it (an editable install
    # is found through a finder, not through sys.path).
    package_parent = str(Path(__file__).resolve().parents[2])
    found = {os.path.realpath(p) for p in [*_interpreter_paths(python), package_parent, *map(str, code_dirs)]
             if os.path.exists(p)}
    found.update(os.path.realpath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                 if p and os.path.exists(p))
    system = [d for d in SYSTEM_DIRS if os.path.lexists(d)]
    kept: list[str] = []
    # Parents first; a folder inside one already bound is there, and binding it again costs a mount.
    for path in sorted(found):
        if not any(path == d or path.startswith(d.rstrip("/") + "/") for d in [*system, *kept]):
            kept.append(path)
    return system + kept


def bwrap_argv(cmd: Sequence[str], *, python: str, workdir: Path, code_dirs: Iterable[str | Path],
               cwd: Path, detach: bool = False, hidden: Iterable[str | Path] = ()) -> list[str]:
    """``cmd`` under bwrap: read-only binds of :func:`readable_paths`, the work folder writable,
    and each file of ``hidden`` (a key file inside a bound folder) replaced by an unreadable node."""
    # /tmp first: the release's code folder may be inside the host's /tmp, and is bound over it.
    argv = [shutil.which("bwrap") or "bwrap", *_bwrap_flags(detach), *_bwrap_mounts()]
    for path in readable_paths(python, code_dirs):
        if os.path.islink(path) and path in SYSTEM_DIRS:
            argv += ["--symlink", os.readlink(path), path]  # merged /usr: /bin -> usr/bin
        else:
            argv += ["--ro-bind", path, path]
    argv += ["--bind", str(workdir), str(workdir)]
    for path in sorted({os.path.realpath(p) for p in hidden if os.path.isfile(p)}):
        argv += ["--ro-bind", os.devnull, path]
    argv += ["--chdir", str(cwd), "--", *cmd]
    return argv


def wrap(isolation: Isolation, cmd: Sequence[str], *, python: str, workdir: Path,
         code_dirs: Iterable[str | Path], cwd: Path, detach: bool = False,
         hidden: Iterable[str | Path] = ()) -> list[str]:
    """The command line that runs ``cmd`` under ``isolation``. ``detach`` (``--release-keep``):
    the sandbox outlives the gate, until its process group is signalled. ``hidden``: files the
    command must not read even where their folder is bound (bwrap only)."""
    if isolation.kind == "bwrap":
        return bwrap_argv(cmd, python=python, workdir=workdir, code_dirs=code_dirs, cwd=cwd, detach=detach,
                          hidden=hidden)
    if isolation.kind == "unshare":
        return [shutil.which("unshare") or "unshare", *_unshare_base(detach), "--", *cmd]
    return list(cmd)


def sandbox_env(server: Mapping[str, str], deployment: Mapping[str, str], home: Path,
                environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The release's environment: the allow-listed part of the gate's, the deployment config's
    ``environmentVariables``, then what the server needs (which wins). Nothing else of the gate's
    environment (signing keys, CI tokens, cloud credentials) is in it."""
    env = os.environ if environ is None else environ
    passed = {k: v for k, v in env.items() if k in PASSED_ENV or k.startswith("LC_")}
    return {**passed, "HOME": str(home), "TMPDIR": "/tmp", **deployment, **server}


#: What an installer needs besides :data:`PASSED_ENV`: its own settings (a private index's URL and
#: credentials are in them), proxies, CA bundles, and where its caches and interpreters live.
INSTALLER_ENV = ("HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
                 "http_proxy", "https_proxy", "no_proxy", "all_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR",
                 "REQUESTS_CA_BUNDLE", "PIP_CONFIG_FILE")
INSTALLER_PREFIXES = ("PIP_", "UV_", "LC_")


def installer_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment pip or uv builds a release's environment in: the build scripts of the
    release's requirements run in it, so only the installer's own settings pass, never the CI's
    secrets (signing keys, CI tokens, cloud credentials)."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items()
            if k in PASSED_ENV or k in INSTALLER_ENV or k.startswith(INSTALLER_PREFIXES)}


def signal_targets(group: Iterable[int], launcher: int, isolation: Isolation) -> list[int]:
    """Whom a graceful stop signals: the server's group, but not a sandbox's launcher, whose
    death would SIGKILL the namespace before the workers finish their requests."""
    return [pid for pid in group if isolation.kind == "none" or pid != launcher]
