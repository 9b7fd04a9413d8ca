"""The release's code cannot reach the gate: secrets, survivors, start-up hooks (issue 22).

Each test gates a copy of the example whose ``init()`` tries one route out of the sandbox
(:mod:`releasetest.endpoint.sandbox`), end to end against the real azmlinfsrv, and checks from
the outside that it got nowhere; the route's own report (printed into the server log) proves it
ran.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import signal
import sysconfig
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from releasetest.endpoint.sandbox import probe

from .conftest import ReferenceRun, ReleaseProject, wait_all_exit

RUN_TIMEOUT_S = 180
SMOKE_ONLY = ("--release-stage", "devtest", "--release-require", "smoke", "-m", "smoke")

needs_pid_namespace = pytest.mark.skipif(probe().kind == "none", reason=f"no sandbox here: {probe().line()}")
needs_bwrap = pytest.mark.skipif(probe().kind != "bwrap", reason=f"needs bwrap: {probe().line()}")

SECRET_NAMES = ("RELEASETEST_SIGNING_KEY", "GITHUB_TOKEN", "AZURE_CLIENT_SECRET", "SYSTEM_ACCESSTOKEN",
                "RELEASETEST_ENDPOINT_KEY")

#: init() of a release that looks for the CI's secrets in its own environment and in every
#: /proc/<pid>/environ it can read (its parent's included), and prints them base64-encoded.
READ_SECRETS = '''def init():
    import base64, glob
    names = {names!r} + ("RELEASETEST_SERVER_KEY",)
    found = [("self", n, os.environ[n]) for n in names if n in os.environ]
    paths = sorted({{f"/proc/{{os.getppid()}}/environ", *glob.glob("/proc/[0-9]*/environ")}})
    for path in paths:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue
        for item in data.split(b"\\0"):
            name, _, value = item.decode(errors="replace").partition("=")
            if name in names:
                found.append((path, name, value))
    for where, name, value in found:
        print("leaked", where, name, base64.b64encode(value.encode()).decode(), flush=True)
    print("secret-scan-done", len(paths), flush=True)
'''

#: init() that double-forks a setsid()ed process that would live on; it says when it runs.
SURVIVOR = '''def init():
    import sys
    first = os.fork()
    if first == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c",
                     "import time\\nprint('survivor-running', flush=True)\\nwhile True: time.sleep(1)", {marker!r}])
        os._exit(0)
    os.waitpid(first, 0)
'''

#: init() that plants a start-up hook in every site-packages and a file in the verdict folder.
PLANT = '''def init():
    import site, sysconfig
    targets = {{*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}}
    paths = [os.path.join(d, {pth!r}) for d in sorted(targets)]
    paths.append(os.path.join(os.getcwd(), os.pardir, "releasetest-out", {pth!r}))
    for path in paths:
        try:
            with open(path, "w") as f:
                f.write("# planted by the release under test\\n")
            print("planted", path, flush=True)
        except OSError as exc:
            print("refused", path, type(exc).__name__, flush=True)
'''


def _prepend_to_init(project: ReleaseProject, code: str) -> None:
    """Run ``code``'s ``init()`` first, then the example's own."""
    project.edit("score.py", "def init():\n", code + "\n\ninit_route = init\n\n\ndef init():\n    init_route()\n")


def _reports(log: str, *words: str) -> list[list[str]]:
    """The entry script's report lines that start with one of ``words`` (the server prefixes
    what it prints with a time stamp and a logger name), split into fields."""
    pattern = re.compile(rf"\b((?:{'|'.join(words)}) .*)$")
    return [found.group(1).split() for line in log.splitlines() if (found := pattern.search(line))]


def _all_outputs(project: ReleaseProject, result: pytest.RunResult) -> dict[str, str]:
    outputs = {"stdout": result.stdout.str(), "stderr": result.stderr.str()}
    for path in project.root.rglob("*"):
        if path.is_file() and "release" not in path.relative_to(project.root).parts[:1]:
            outputs[str(path)] = path.read_text(errors="replace")
    return outputs


@needs_pid_namespace
def test_secrets_reach_no_release_code(release_project: ReleaseProject, monkeypatch: pytest.MonkeyPatch) -> None:
    """CI secrets in the gate's environment are not in the server's, nor in any /proc it can read,
    so nothing the entry script prints carries them; the endpoint key is fresh, not the CI's."""
    values = {name: secrets.token_urlsafe(24) for name in SECRET_NAMES}
    values["RELEASETEST_SIGNING_KEY"] = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    release_project.edit("AciDeploymentConfig.yml", "authEnabled: False", "authEnabled: True")
    _prepend_to_init(release_project, READ_SECRETS.format(names=SECRET_NAMES))

    result = release_project.run(*SMOKE_ONLY, timeout=RUN_TIMEOUT_S)

    verdict = release_project.verdict()
    assert verdict["decision"] == "PROMOTE", verdict["reasons"]
    log = Path(verdict["endpoint"]["log"]).read_text()
    assert "secret-scan-done" in log, "the entry script's scan did not run"
    leaked = _reports(log, "leaked")
    assert leaked and all(fields[2] == "RELEASETEST_SERVER_KEY" for fields in leaked), leaked
    server_keys = {base64.b64decode(fields[3]).decode() for fields in leaked}
    assert values["RELEASETEST_ENDPOINT_KEY"] not in server_keys, "the local endpoint used the CI's endpoint key"
    needles = {f"{name} ({form})": text for name, value in values.items()
               for form, text in (("raw", value), ("base64", base64.b64encode(value.encode()).decode()))}
    needles.update({f"RELEASETEST_SIGNING_KEY line {i}": line for i, line in
                    enumerate(values["RELEASETEST_SIGNING_KEY"].splitlines()) if "-----" not in line})
    outputs = _all_outputs(release_project, result)
    found = [(what, where) for where, text in outputs.items() for what, needle in needles.items() if needle in text]
    assert not found, f"secrets in the run's outputs: {found}"


@needs_pid_namespace
def test_a_double_forked_process_does_not_outlive_the_gate(release_project: ReleaseProject) -> None:
    """init() double-forks and setsid()s a process: it is gone once pytest has exited."""
    marker = f"releasetest-survivor-{secrets.token_hex(8)}"
    _prepend_to_init(release_project, SURVIVOR.format(marker=marker))

    result = release_project.run(*SMOKE_ONLY, timeout=RUN_TIMEOUT_S)

    assert result.ret == 0, result.stdout.str()[-2000:]
    log = Path(release_project.verdict()["endpoint"]["log"]).read_text()
    assert "survivor-running" in log, "the survivor never started"
    alive = _processes_with(marker)
    survivors = wait_all_exit(alive, timeout_s=10)
    for pid in survivors:  # leave the machine clean even when the assertion below fails
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"processes started by the release outlived the gate: {survivors}"


def _processes_with(marker: str) -> list[int]:
    """Live processes whose command line holds ``marker``."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@needs_bwrap
def test_entry_script_cannot_plant_start_up_hooks_or_files(release_project: ReleaseProject) -> None:
    """Writing a .pth into any site-packages or a file into the verdict folder is refused."""
    pth = f"releasetest_planted_{secrets.token_hex(6)}.pth"
    _prepend_to_init(release_project, PLANT.format(pth=pth))
    site_dirs = {Path(sysconfig.get_paths()[k]) for k in ("purelib", "platlib")}
    try:
        result = release_project.run(*SMOKE_ONLY, timeout=RUN_TIMEOUT_S)
        verdict = release_project.verdict()
        planted = [p for p in [*(d / pth for d in site_dirs), release_project.verdict_path.parent / pth]
                   if p.exists()]
    finally:
        for d in site_dirs:
            (d / pth).unlink(missing_ok=True)
    assert result.ret == 0 and verdict["decision"] == "PROMOTE", verdict["reasons"]
    log = Path(verdict["endpoint"]["log"]).read_text()
    tried = _reports(log, "planted", "refused")
    assert len(tried) >= 2, f"the entry script tried nothing:\n{log[-2000:]}"
    assert not planted and all(fields[0] == "refused" for fields in tried), tried


@needs_bwrap
def test_the_honest_example_promotes_inside_bwrap(reference_run: ReferenceRun) -> None:
    verdict = reference_run.verdict()
    assert verdict["decision"] == "PROMOTE"
    assert verdict["endpoint"]["isolation"].startswith("isolation: bwrap ("), verdict["endpoint"]
