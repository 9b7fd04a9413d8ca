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
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from releasetest.cli import main
from releasetest.endpoint.local import LocalEndpoint
from releasetest.endpoint.sandbox import probe
from releasetest.release.data import load_holdout
from releasetest.release.environment import build_isolated, parse_conda_env
from releasetest.release.manifest import load_release

from .conftest import NO_BUILTIN_SUITE, ReferenceRun, ReleaseProject, copy_example, lighten, wait_all_exit
from .recorded_target import RecordedTarget
from .test_acceptance_run import _candidate_against
from .test_environment import package_index  # noqa: F401 (a fixture)

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


@pytest.fixture(params=["bwrap", "unshare"])
def sandbox_kind(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The sandbox the gate makes: bwrap as installed, or plain ``unshare`` as on a runner without
    bwrap (this process and the ones it starts find every tool on PATH but bwrap; probed afresh)."""
    if request.param == "unshare":
        tools = tmp_path_factory.mktemp("no-bwrap")
        for folder in dict.fromkeys(os.environ.get("PATH", "").split(os.pathsep)):
            for entry in os.scandir(folder) if os.path.isdir(folder) else ():
                if entry.name != "bwrap" and not (tools / entry.name).exists():
                    (tools / entry.name).symlink_to(entry.path)
        monkeypatch.setenv("PATH", str(tools))
    probe.cache_clear()
    if probe().kind != request.param:
        pytest.skip(f"needs {request.param}: {probe().line()}")
    yield request.param
    monkeypatch.undo()
    probe.cache_clear()


def test_secrets_reach_no_release_code(release_project: ReleaseProject, monkeypatch: pytest.MonkeyPatch,
                                       sandbox_kind: str) -> None:
    """CI secrets in the gate's environment are not in the server's, nor in any /proc it can read,
    so nothing the entry script prints carries them; the endpoint key is fresh, not the CI's."""
    values = {name: secrets.token_urlsafe(24) for name in SECRET_NAMES}
    values["RELEASETEST_SIGNING_KEY"] = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    release_project.edit("AciDeploymentConfig.yml", "authEnabled: False", "authEnabled: True")
    _prepend_to_init(release_project, READ_SECRETS.format(names=SECRET_NAMES))

    result = release_project.run_inprocess(*SMOKE_ONLY)

    verdict = release_project.verdict()
    assert verdict["decision"] == "PROMOTE", verdict["reasons"]
    assert verdict["deploy"]["isolation"].startswith(f"isolation: {sandbox_kind} ")
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


def test_a_double_forked_process_does_not_outlive_the_gate(release_project: ReleaseProject, sandbox_kind: str) -> None:
    """init() double-forks and setsid()s a process: it is gone once pytest has exited."""
    marker = f"releasetest-survivor-{secrets.token_hex(8)}"
    _prepend_to_init(release_project, SURVIVOR.format(marker=marker))

    result = release_project.run_inprocess(*SMOKE_ONLY)

    assert result.ret == 0, result.stdout.str()[-2000:]
    assert release_project.verdict()["deploy"]["isolation"].startswith(f"isolation: {sandbox_kind} ")
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
    """The honest example PROMOTEs under bwrap, and every output says so: the verdict, the
    progress line, the terminal's gate section, the CI summary and the report's header."""
    verdict = reference_run.verdict()
    assert verdict["decision"] == "PROMOTE"
    line = verdict["endpoint"]["isolation"]
    assert line.startswith("isolation: bwrap ("), verdict["endpoint"]
    out = reference_run.result.outlines
    assert f"releasetest: {line}" in out, "the run did not say which isolation is in force"
    assert out.index(line) > out.index(f"releasetest: {line}"), "no isolation line in the gate's section"
    assert "target local (isolation bwrap)" in reference_run.gh_summary.read_text()
    assert "target local (isolation bwrap)" in (reference_run.out_dir / "summary.md").read_text()
    report = (reference_run.out_dir / "report.html").read_text()
    assert re.search(r"target local <span title=\"isolation: bwrap \(.*\)\">\(isolation bwrap\)</span>", report)


#: The team's own tests, each trying one route out of their pytest's sandbox; each fails if it gets out.
ESCAPING_TEAM_TESTS = '''import glob, os, site, sys, sysconfig

NAMES = {names!r}


def test_reads_no_ci_secret():
    found = [("self", n) for n in NAMES if n in os.environ]
    for path in sorted({{f"/proc/{{os.getppid()}}/environ", *glob.glob("/proc/[0-9]*/environ")}}):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue
        found += [(path, n) for n in NAMES if (n + "=").encode() in data]
    assert not found, found


def test_writes_no_start_up_hook_nor_into_the_gates_folders():
    folders = {{*site.getsitepackages(), sysconfig.get_paths()["purelib"], {verdict_dir!r}, os.getcwd()}}
    written = []
    for folder in sorted(folders):
        try:
            with open(os.path.join(folder, {pth!r}), "w") as f:
                f.write("import os\\n")
            written.append(folder)
        except OSError:
            pass
    assert not written, written


def test_leaves_a_double_forked_process():
    read, write = os.pipe()
    first = os.fork()
    if first == 0:
        os.setsid()
        if os.fork() == 0:
            os.dup2(write, 1)
            os.execv(sys.executable, [sys.executable, "-c",
                     "import time\\nprint('up', flush=True)\\nwhile True: time.sleep(1)", {marker!r}])
        os._exit(0)
    os.close(write)
    os.waitpid(first, 0)
    with os.fdopen(read) as said:
        assert said.readline() == "up\\n", "the survivor did not start"
'''


def _private_site(venv: Path) -> tuple[Path, set[Path]]:
    """A venv whose own site-packages is empty but which imports everything the test venv has
    (``site.addsitedir`` from a ``.pth``, so the editable install's own ``.pth`` is read too)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    own = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    shared = sysconfig.get_paths()["purelib"]
    (Path(own) / "releasetest_test_venv.pth").write_text(f"import site; site.addsitedir({shared!r})\n")
    return python, {Path(own)}


def test_the_teams_own_tests_run_in_the_sandbox(release_project: ReleaseProject, recorded: RecordedTarget,
                                                monkeypatch: pytest.MonkeyPatch, sandbox_kind: str) -> None:
    """The team's pytest, started by a gate that holds CI secrets: its tests find no secret in
    their environment or any /proc, and their setsid() survivor is gone when the gate is; under
    bwrap they write no start-up hook into site-packages nor anything into the verdict folder or
    where pytest runs, under unshare the start-up hook they plant BLOCKs the run."""
    for name in SECRET_NAMES:
        monkeypatch.setenv(name, secrets.token_urlsafe(24))
    marker = f"releasetest-survivor-{secrets.token_hex(8)}"
    pth = f"releasetest_planted_{secrets.token_hex(6)}.pth"
    verdict_dir = release_project.verdict_path.parent
    verdict_dir.mkdir()
    tests = release_project.release / "tests"
    tests.mkdir()
    (tests / "test_escape.py").write_text(ESCAPING_TEAM_TESTS.format(
        names=SECRET_NAMES, verdict_dir=str(verdict_dir), pth=pth, marker=marker))
    shared_dirs = site_dirs = {Path(sysconfig.get_paths()[k]) for k in ("purelib", "platlib")}
    if sandbox_kind == "unshare":
        # The team's writes succeed under unshare: they land in a site-packages of this test's own
        # (a venv over the test venv's packages), never in the one every other gate starts from.
        python, site_dirs = _private_site(release_project.root / "venv")
        monkeypatch.setattr(release_project.pytester, "_getpytestargs", lambda: (str(python), "-mpytest"))
    folders = [*site_dirs, verdict_dir, release_project.root]
    try:
        result = release_project.run("--release-stage", "devtest", *recorded.args, "--release-require=drift",
                                     "-m", f"drift or {NO_BUILTIN_SUITE[1]}", "release/tests", timeout=RUN_TIMEOUT_S)
        survivors = wait_all_exit(_processes_with(marker), timeout_s=10)
        planted = [folder for folder in folders if (folder / pth).exists()]
        in_shared = [folder for folder in shared_dirs if (folder / pth).exists()]
    finally:
        for folder in {*folders, *shared_dirs}:
            (folder / pth).unlink(missing_ok=True)
    for pid in survivors:  # leave the machine clean even when an assertion below fails
        os.kill(pid, signal.SIGKILL)
    verdict = release_project.verdict()
    assert f"(isolation: {sandbox_kind})" in result.stdout.str()
    assert not survivors, f"processes started by the team's tests outlived the gate: {survivors}"
    assert not in_shared, f"the team's tests wrote into the site-packages other gates start from: {in_shared}"
    if sandbox_kind == "bwrap":
        assert verdict["suites"]["other"]["passed"] == 3, (verdict["reasons"], result.stdout.str()[-3000:])
        assert result.ret == 0 and verdict["decision"] == "PROMOTE", verdict["reasons"]
        assert not planted, f"the team's tests wrote into {planted}"
        return
    # unshare leaves the file system as the gate's user sees it: the writes succeed, and the planted
    # start-up hook is caught (BLOCK) instead of refused; the secrets stay out of reach all the same.
    assert planted, "under unshare the team's tests write where the gate's user can"
    failing = verdict["suites"]["other"]["failing"]
    assert len(failing) == 1 and "test_writes_no_start_up_hook" in failing[0], failing
    assert verdict["decision"] == "BLOCK" and any(
        "start-up files" in reason and pth in reason for reason in verdict["reasons"]), verdict["reasons"]


@pytest.fixture
def no_sandbox_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process finds neither bwrap nor unshare (as on a runner without them), probed afresh."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    probe.cache_clear()
    yield
    monkeypatch.undo()
    probe.cache_clear()


@pytest.mark.usefixtures("no_sandbox_tools")
def test_required_isolation_without_a_sandbox_is_a_configuration_error(release_project: ReleaseProject) -> None:
    """``--release-isolation required`` where no sandbox can be made: BLOCK at load, nothing
    deployed, one line naming what is missing and what the CI image needs."""
    result = release_project.run_inprocess("--release-stage", "devtest", "--release-isolation", "required")
    assert result.ret == 4
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK" and verdict["endpoint"] is None
    reason = verdict["reasons"][0]
    assert "--release-isolation: required, but only none is possible here (bwrap not installed" in reason
    assert "install bubblewrap" in reason and "--release-isolation auto" in reason
    assert "\n" not in reason


@pytest.mark.usefixtures("no_sandbox_tools")
def test_promote_keep_takes_the_isolation_setting(reference_run: ReferenceRun, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """``releasetest promote --target local`` sandboxes the release as the gate does, with the
    same setting (``--isolation``, from the gate's option table): ``required`` where no sandbox can
    be made refuses before anything is deployed or recorded."""
    verdict, store = tmp_path / "verdict.json", tmp_path / "history"
    shutil.copyfile(reference_run.verdict_path, verdict)
    assert main(["approve", str(verdict), "--by", "alice", "--store", str(store)]) == 0
    promote = ["promote", "--from", "devtest", "--to", "production", "--verdict", str(verdict), "--store", str(store),
               "--keep"]
    with pytest.raises(SystemExit):
        main([*promote, "--isolation", "maybe"])
    assert "unknown isolation 'maybe'" in capsys.readouterr().err
    code = main([*promote, "--isolation", "required"])
    err = capsys.readouterr().err
    assert code != 0 and "required, but only none is possible here (bwrap not installed" in err, err
    assert not (store / "promotions").exists() or not any((store / "promotions").iterdir())
    assert not (tmp_path / "server-production.log").exists(), "a server was started"


def test_an_unknown_isolation_mode_is_refused(release_project: ReleaseProject) -> None:
    result = release_project.run_inprocess("--release-stage", "devtest", "--release-isolation", "maybe")
    assert result.ret != 0
    assert "unknown isolation 'maybe': use auto" in result.stderr.str()


@needs_pid_namespace
def test_isolation_off_is_recorded(release_project: ReleaseProject) -> None:
    """``off`` runs the release without a sandbox (its /proc shows the host's processes), and
    the verdict, its warnings and the CI summary say so."""
    _prepend_to_init(release_project, READ_SECRETS.format(names=SECRET_NAMES))
    result = release_project.run_inprocess(*SMOKE_ONLY, "--release-isolation", "off")
    verdict = release_project.verdict()
    assert result.ret == 0 and verdict["decision"] == "PROMOTE", verdict["reasons"]
    line = "isolation: none (--release-isolation off); environment allow-list only"
    assert verdict["endpoint"]["isolation"] == line
    assert line in verdict["warnings"]
    assert "target local (isolation none)" in (release_project.verdict_path.parent / "summary.md").read_text()
    scanned = [int(fields[1]) for fields in _reports(Path(verdict["endpoint"]["log"]).read_text(), "secret-scan-done")]
    assert scanned and scanned[0] > PROCS_IN_SANDBOX, scanned


#: More /proc/<pid>/environ files than a sandboxed server can see (its launcher's init, gunicorn's
#: master and workers, and the script's own helpers).
PROCS_IN_SANDBOX = 12


@needs_pid_namespace
def test_the_champion_runs_in_the_sandbox(release_project: ReleaseProject, monkeypatch: pytest.MonkeyPatch) -> None:
    """The champion deployed beside the candidate is built like it: its entry script sees none
    of the CI's secrets and only its own namespace's processes."""
    for name in SECRET_NAMES:
        monkeypatch.setenv(name, secrets.token_urlsafe(24))
    champion = lighten(copy_example(release_project.root / "champion-root"))
    script = champion / "score.py"
    script.write_text(script.read_text().replace(
        "def init():\n", READ_SECRETS.format(names=SECRET_NAMES) + "\n\ninit_route = init\n\n\ndef init():\n"
        "    init_route()\n", 1))
    _candidate_against(release_project, "../champion-root/release/release.toml")

    result = release_project.run("--release-stage", "devtest", "--release-require", "acceptance",
                                 "-k", "test_no_regression_against_champion", timeout=RUN_TIMEOUT_S)

    verdict = release_project.verdict()
    assert result.ret == 0 and verdict["decision"] == "PROMOTE", verdict["reasons"]
    log = (release_project.verdict_path.parent / "server-devtest-champion.log").read_text()
    scanned = [int(fields[1]) for fields in _reports(log, "secret-scan-done")]
    assert scanned, f"the champion's scan did not run:\n{log[-2000:]}"
    assert scanned[0] <= PROCS_IN_SANDBOX, f"the champion saw {scanned[0]} processes: not in a PID namespace"
    leaked = [fields for fields in _reports(log, "leaked") if fields[2] != "RELEASETEST_SERVER_KEY"]
    assert not leaked, leaked


#: A package whose build script (run by the installer) reports the CI secrets it can see.
LEAKY_SETUP = """import os
from setuptools import setup
found = [n for n in {names!r} if n in os.environ]
with open({report!r}, "w") as f:
    f.write("seen: " + ",".join(found) + "\\n")
setup(name="azureml-inference-server-http", version="0.0.1", py_modules=[])
"""


@pytest.mark.usefixtures("package_index")
def test_isolated_build_scripts_see_no_ci_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--release-env isolated`` runs the installer, and with it the build scripts of the
    release's requirements, in an allow-listed environment."""
    for name in SECRET_NAMES:
        monkeypatch.setenv(name, secrets.token_urlsafe(24))
    report = tmp_path / "seen.txt"
    package = tmp_path / "leaky"
    package.mkdir()
    (package / "setup.py").write_text(LEAKY_SETUP.format(names=SECRET_NAMES, report=str(report)))
    conda = tmp_path / "myenv.yml"
    conda.write_text("dependencies:\n  - python=3.11\n  - pip:\n"
                     f"    - azureml-inference-server-http @ {package.as_uri()}\n")

    build_isolated(parse_conda_env(conda), tmp_path / "cache")

    assert report.read_text() == "seen: \n"


#: The start of a run() that answers a three-row request slowly and says when it has begun.
SLOW_RUN = """def run(data):
    if len(data) == 3:
        print("slow-request-started", flush=True)
        import time
        time.sleep(2)
"""


@needs_pid_namespace
def test_teardown_answers_the_request_in_flight(release_project: ReleaseProject) -> None:
    """Teardown stops the sandboxed server only once its worker has answered the request it is
    serving (the gate no longer waits for the worker's exit work, but must wait for that)."""
    release_project.edit("score.py", "def run(data):\n", SLOW_RUN)
    release = load_release(release_project.release / "release.toml")
    assert release.data is not None
    holdout = load_holdout(release.data)
    log = release_project.root / "server.log"
    endpoint = LocalEndpoint(release, release.stage("devtest"), holdout.golden(5), log_path=log)
    answers: list[requests.Response | BaseException] = []
    try:
        handle = endpoint.deploy()
        rows = holdout.golden(3)[0][:3]

        def send() -> None:
            try:
                answers.append(requests.post(handle.scoring_uri, json={"data": rows}, timeout=30))
            except requests.RequestException as exc:
                answers.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        deadline = time.monotonic() + 30
        while "slow-request-started" not in log.read_text() and time.monotonic() < deadline:
            sender.join(timeout=0.05)
        assert "slow-request-started" in log.read_text(), "the slow request never reached run()"
    finally:
        endpoint.teardown()
    sender.join(timeout=30)
    assert len(answers) == 1 and isinstance(answers[0], requests.Response), answers
    assert answers[0].status_code == 200 and len(answers[0].json()["predictions"]) == 3, answers[0].text
