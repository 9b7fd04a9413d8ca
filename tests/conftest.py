"""Release projects in temp dirs, the pytest runs on them (in subprocesses), and one shared reference run.

Two ways to test a gate run:

- ``reference_run`` (session scope): the example release, unchanged, run ONCE per test session with
  ``pytest -p no:cacheprovider --release-stage devtest --junitxml=junit.xml -rA`` and
  ``GITHUB_STEP_SUMMARY``/``TF_BUILD`` set. It keeps ``result`` (a ``pytest.RunResult``: ``ret``,
  ``fnmatch_lines``, ``parseoutcomes``), ``verdict()``, ``out_dir`` (report.html, summary.md,
  server-devtest.log), ``junit`` and ``gh_summary``. Use it in any test that only READS a run's outputs
  (report, browser, summary, JUnit properties, history, promote-from-a-passing-verdict). Never write
  into its folders: copy what you change into ``tmp_path`` (promote takes ``--manifest``; a verdict file
  copied byte for byte keeps its seal).
- ``release_project`` (function scope): a fresh copy to edit, for a test that changes the release, the
  options or the environment; ``run_inprocess()`` gates it in this process (the endpoint is still
  the real azmlinfsrv: a child interpreter for the gate costs a second of CPU and adds nothing to
  what the endpoint does), ``run()`` in a child interpreter, for what is about the gate's own
  process (signals, kills, its environment, what it imports, ``--release-keep``, ``-p`` plugin
  files, the Azure ML client).
- ``recorded`` (function scope): for tests of the plugin's wiring (options, markers, hooks, the end
  of the run, partial runs, the xdist hand-over), an in-process endpoint that answers with the
  example's recorded predictions; ``release_project.run_inprocess(*recorded.args, ...)`` gates
  against it with no server and no child interpreter. What is about the endpoint (deploy, suites,
  faults, signals) runs against the real azmlinfsrv.

Every child pytest a test starts gets the default SIGINT disposition (``default_sigint``), so the
tests behave the same when the outer run was started from a background job that ignores SIGINT.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import releasetest.suites

from releasetest.endpoint.process import group_pids

# Loaded once for the session: pytester's in-process runs put sys.modules back as they found it,
# and scipy (the drift suite's metrics) cannot be imported a second time in one interpreter.
import releasetest.checks.drift.stats  # noqa: E402, F401  isort: skip

# importlib_metadata (the backport azure-ai-ml's dependencies import when a v2 release is validated)
# takes distribution discovery over on import: it deletes the standard PathFinder's
# find_distributions and adds its own finder to sys.meta_path. An in-process run then puts
# sys.meta_path back, leaving no finder at all: no pytest11 plugin for the next in-process gate
# ("unrecognized arguments: --release-stage"). Imported here, before any run, its finder stays.
try:
    import importlib_metadata  # noqa: F401  isort: skip
except ImportError:
    pass

if TYPE_CHECKING:
    from tests.recorded_target import RecordedTarget

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "port-weather"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``long`` first (the order is otherwise kept): under xdist each then runs beside
    short ones instead of alone at the end of the run."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


def pytest_configure(config: pytest.Config) -> None:
    """Speed settings of this suite, made before xdist starts its workers.

    Child interpreters (some 160 gate runs, their servers, the xdist workers) cache bytecode even
    where the environment says not to (``PYTHONDONTWRITEBYTECODE``, common in CI images): else each
    recompiles releasetest and has pytest rewrite hypothesis's asserts again, ~0.7 s of CPU apiece.
    xdist's first hand-out is one block of consecutive tests per worker (a quarter of its share),
    which would give one worker every ``long`` test; at most two each spreads them.
    The test venv's ``bin`` comes first on PATH, as in an activated venv (tox, CI): started as
    ``.venv/bin/pytest``, the isolated-environment builds would not find the uv the test extra
    installs and would build with pip (five times the CPU, ~20 s per build).
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([bin_dir, *filter(None, [os.environ.get("PATH")])])
    if getattr(config.option, "maxschedchunk", 0) is None:
        config.option.maxschedchunk = 1


#: The one warning a gate run in this process gets that a run of its own would not.
IN_PROCESS_WARNING = "ignore:Module already imported so cannot be rewritten:pytest.PytestAssertRewriteWarning"


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

    def run_inprocess(self, *args: str, interrupts: bool = False) -> pytest.RunResult:
        """The gate in this process, for tests of the plugin's wiring: give it the ``recorded``
        target, or a run that stops before anything is deployed. ``interrupts``: the run's own
        KeyboardInterrupt is its result, not a Ctrl-C for this session. This session has imported
        releasetest already, so the run's pytest could not rewrite its asserts and would say so."""
        return gate_inprocess(self.pytester, *args, interrupts=interrupts)

    def edit(self, relpath: str, old: str, new: str) -> None:
        path = self.release / relpath
        text = path.read_text()
        assert old in text, f"{old!r} not in {path}"
        path.write_text(text.replace(old, new, 1))


def gate_inprocess(pytester: pytest.Pytester, *args: str, interrupts: bool = False) -> pytest.RunResult:
    """A gate run in this process (see :meth:`ReleaseProject.run_inprocess`): for a test about what
    the endpoint does, the endpoint is still the real azmlinfsrv; what stays in a child interpreter
    is what is about the gate's own process (signals, kills, its environment, what it imports,
    ``--release-keep``, a ``-p`` plugin file, the Azure ML client). Every wait in the gate is
    bounded by the gate itself (readiness, scoring timeout, load window)."""
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "-W", IN_PROCESS_WARNING, *args,
                                        no_reraise_ctrlc=interrupts)


def copy_example(root: Path) -> Path:
    """The example release (without its raw training data) under ``root/release``."""
    dest = root / "release"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("weather.csv", "__pycache__", "train.py"),
                    copy_function=shutil.copyfile)  # contents only: times and modes decide nothing
    return dest


@pytest.fixture
def release_project(pytester: pytest.Pytester) -> ReleaseProject:
    """A light copy of the example release (:func:`lighten`) and an ini pointing at it, for a test
    that changes something."""
    lighten(copy_example(pytester.path))
    pytester.makeini(INI)
    return ReleaseProject(pytester, pytester.path)


@pytest.fixture(scope="session")
def env_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where isolated environments are cached (``RELEASETEST_CACHE_DIR``) for a test that does not
    assert the build itself: the caller's own cache when set, so a re-run reuses the venv, else one
    folder for the session."""
    given = os.environ.get("RELEASETEST_CACHE_DIR")
    return Path(given) if given else tmp_path_factory.mktemp("envcache")


@pytest.fixture
def example_project(pytester: pytest.Pytester) -> ReleaseProject:
    """An unchanged copy of the example release, for a test about its own files (the scikit-learn
    pickle itself); it costs a full cold start wherever it is served."""
    copy_example(pytester.path)
    pytester.makeini(INI)
    return ReleaseProject(pytester, pytester.path)


#: What :func:`lighten` puts into score.py: the scaler's arithmetic, without scikit-learn.
_STANDARDIZE = '''

class _Standardize:
    """StandardScaler.transform from its fitted mean and scale (no scikit-learn import); like it, refuses infinity."""

    def __init__(self, fitted):
        self.mean, self.scale = fitted["mean"], fitted["scale"]

    def transform(self, x):
        if np.isinf(x).any():
            raise ValueError("Input X contains infinity or a value too large for dtype('float64').")
        return (x - self.mean) / self.scale
'''


@functools.cache
def _light_scaler() -> bytes:
    """The example's fitted scaler as a joblib pickle of two numpy arrays (made once per process)."""
    import io

    import joblib

    fitted = joblib.load(EXAMPLE / "models" / "model-scaler.pkl")
    buffer = io.BytesIO()
    joblib.dump({"mean": fitted.mean_, "scale": fitted.scale_}, buffer)
    return buffer.getvalue()


def lighten(release: Path) -> Path:
    """Make a copied example release cheap to serve: the scaler artifact becomes its two fitted arrays
    and score.py standardises with them, so the server's init() no longer imports scikit-learn
    (about 2 s of CPU per server start, most of a cold start). The predictions are the same
    arithmetic (``(x - mean) / scale`` in float64), so expected_predictions.csv still holds, and the
    release is still served by the real azmlinfsrv. Its smoke suite's memory burst is 40 requests
    with a 16 MB bound, not 200 with 64 MB (an honest server here grows at most 0.5 MB; the leak
    the memory tests plant, 1 MiB a request, still exceeds it). Tests about the example's own
    files use :func:`copy_example` (``reference_run`` does)."""
    scaler = release / "models" / "model-scaler.pkl"
    old_digest = hashlib.sha256(scaler.read_bytes()).hexdigest()
    scaler.write_bytes(_light_scaler())
    manifest = release / "release.toml"
    text = manifest.read_text()
    assert old_digest in text, f"{old_digest} not pinned in {manifest}"
    assert "[smoke]" not in text, f"{manifest} has a [smoke] table already"
    manifest.write_text(text.replace(old_digest, hashlib.sha256(scaler.read_bytes()).hexdigest())
                        + "\n[smoke]\nmemory_requests = 40\nmax_rss_growth_mb = 16\n")
    script = release / "score.py"
    source = script.read_text()
    load = "    scaler = joblib.load(scaler_path)\n"
    for old, new in ((load, load.replace("joblib.load(scaler_path)", "_Standardize(joblib.load(scaler_path))")),
                     ("\n\ndef _version_key(", _STANDARDIZE + "\n\ndef _version_key(")):
        assert old in source, f"{old!r} not in {script}"
        source = source.replace(old, new, 1)
    script.write_text(source)
    return release


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordedTarget]:
    """An in-process endpoint answering with the example's recorded predictions
    (``tests/recorded_target.py``); ``recorded.args`` point a gate at it. CI and releasetest
    variables of this run are hidden from the gates run in this process."""
    from tests.recorded_target import recorded_target

    for name in list(os.environ):
        if name.startswith("RELEASETEST_") or name in ("GITHUB_STEP_SUMMARY", "TF_BUILD"):
            monkeypatch.delenv(name)
    with recorded_target() as target:
        yield target


#: Most tests run one suite (-m) and read verdict.json: partial runs may write it.
INI = "[pytest]\nrelease_config = release/release.toml\nrelease_partial_ok = true\n"


def suites_gate(*names: str) -> tuple[str, ...]:
    """A whole gate (not partial: promotion accepts its verdict) that runs and requires only the
    suites ``names``: their files rather than ``-m``, and ``-c`` to keep pytest on the project's
    tox.ini, not the configuration above those files. For a test whose assertions read only what
    these suites find: it is spared the others' work (the load window, replaying recorded traffic)."""
    return ("-c", "tox.ini", "--release-stage", "devtest", "--release-require", ",".join(names),
            *(str(Path(releasetest.suites.__path__[0]) / f"suite_{name}.py") for name in names))


#: A whole gate that requires only the smoke suite, for a test that needs a PROMOTE, not what the
#: other suites find.
SMOKE_GATE = suites_gate("smoke")

#: The command line of the shared reference run (what a CI job would run, with JUnit output).
REFERENCE_ARGS = ("-p", "no:cacheprovider", "--release-stage", "devtest", "--junitxml=junit.xml", "-rA")


def default_sigint() -> None:
    """preexec_fn of child processes: SIGINT back to the default, whatever the parent inherited.

    A shell starts background jobs with SIGINT ignored, and an ignored disposition survives exec:
    the child Python would then install no KeyboardInterrupt handler and ignore Ctrl-C.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment without what would make a child pytest behave as part of this run."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_XDIST_", "PYTEST_ADDOPTS", "PYTEST_CURRENT_TEST"))}
    return {**env, "PYTHONUNBUFFERED": "1", "PY_COLORS": "0", **extra}


@dataclass(frozen=True)
class ReferenceRun:
    """The unchanged example, gated once per session; read-only for the tests that share it."""

    root: Path
    result: pytest.RunResult

    @property
    def release(self) -> Path:
        return self.root / "release"

    @property
    def out_dir(self) -> Path:
        return self.root / "releasetest-out"

    @property
    def verdict_path(self) -> Path:
        return self.out_dir / "verdict.json"

    @property
    def junit(self) -> Path:
        return self.root / "junit.xml"

    @property
    def gh_summary(self) -> Path:
        return self.root / "gh-summary.md"

    def verdict(self) -> dict[str, Any]:
        """A fresh copy each call, so a test may change what it got."""
        return json.loads(self.verdict_path.read_text())


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> ReferenceRun:
    """The example release gated once, in a subprocess, for every test that only reads the outputs.

    Under pytest-xdist the workers share one run: the first to get the lock runs it in the
    session's common temp folder and leaves its result there for the others.
    """
    if not hasattr(pytestconfig, "workerinput"):
        return _reference_run(tmp_path_factory.mktemp("reference"))
    shared = tmp_path_factory.getbasetemp().parent
    with open(shared / "reference.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        root = shared / "reference"
        done = root / "result.json"
        if not done.is_file():
            root.mkdir()
            run = _reference_run(root)
            done.write_text(json.dumps({"ret": run.result.ret, "out": run.result.outlines,
                                        "err": run.result.errlines, "seconds": run.result.duration}))
            return run
    saved = json.loads(done.read_text())
    return ReferenceRun(root, pytest.RunResult(saved["ret"], saved["out"], saved["err"], saved["seconds"]))


def _reference_run(root: Path) -> ReferenceRun:
    copy_example(root)
    (root / "pytest.ini").write_text(INI)
    env = child_env(GITHUB_STEP_SUMMARY=str(root / "gh-summary.md"), TF_BUILD="True", HOME=str(root))
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", *REFERENCE_ARGS], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300, preexec_fn=default_sigint)
    result = pytest.RunResult(done.returncode, done.stdout.splitlines(), done.stderr.splitlines(),
                              time.monotonic() - started)
    assert (root / "releasetest-out" / "verdict.json").is_file(), f"no verdict:\n{done.stdout[-3000:]}"
    return ReferenceRun(root, result)


@contextmanager
def loopback_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[ThreadingHTTPServer]:
    """A plain HTTP server on 127.0.0.1 (a free port) serving ``handler``, stopped on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def process_group_gone(pid: int) -> bool:
    """True when no live process of the server's group (gunicorn master or workers) is left.

    Zombies do not count: in a container whose init does not reap, an orphaned worker that was
    killed stays a zombie, holding no port and no memory.
    """
    return not group_pids(pid)


def wait_all_exit(pids: list[int], timeout_s: float) -> list[int]:
    """Wait (on pidfds, no polling) until every pid has exited; return those still running."""
    fds = {}
    for pid in pids:
        try:
            fds[os.pidfd_open(pid)] = pid
        except ProcessLookupError:
            continue
    try:
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        pending = set(fds)
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            for fd, _ in poller.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                pending.discard(fd)
                poller.unregister(fd)
        return [fds[fd] for fd in pending]
    finally:
        for fd in fds:
            os.close(fd)


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


def assert_none_ran(result: pytest.RunResult, verdict: dict[str, Any] | None = None) -> None:
    """Deploy failed: every test that needs the endpoint is counted as not run because of it; none
    fails or errs, and only the drift suite's (which asks nothing of the endpoint) may pass."""
    outcomes = result.parseoutcomes()
    assert " not run (endpoint not ready) in " in result.outlines[-2], result.outlines[-2]
    assert not {"failed", "error", "errors"} & set(outcomes), outcomes
    if outcomes.get("passed"):
        assert verdict is not None, outcomes
        passed = {name: s["passed"] for name, s in verdict["suites"].items() if s.get("passed")}
        assert set(passed) == {"drift"} and sum(passed.values()) == outcomes["passed"], passed


BUSY_TEST = """
    import time

    def test_busy(scoring_client, holdout):
        rows = holdout.rows[:4].tolist()
        print("releasetest-test-running", flush=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            scoring_client.score(rows)
"""


#: Only the team's own tests (which run in their own pytest, after the built-in suites; drift and
#: shadow run wherever the release ships recorded traffic, as the example does).
NO_BUILTIN_SUITE = ("-m", "not (smoke or acceptance or schema or load or drift or shadow)")


def signal_while_busy(project: ReleaseProject, sig: int, *args: str, timeout: float = 120) -> tuple[int, str]:
    """Run a team's test that keeps sending traffic (in its own pytest, the built-in suites
    deselected), send ``sig`` to the gate's pytest once it is running, and return pytest's exit
    code and output. Synchronised on the test's own output line."""
    project.pytester.makepyfile(test_busy=BUSY_TEST)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s", "--release-stage", "devtest", *args,
         *NO_BUILTIN_SUITE, "test_busy.py"],
        cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=default_sigint)
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
