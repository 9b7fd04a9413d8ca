"""pytest entry point (``pytest11``): options, markers, fixtures and hooks; wiring only.

The work happens in pytest-free modules (:mod:`releasetest.run`, :mod:`releasetest.verdict`,
:mod:`releasetest.endpoint`); this module moves pytest's events into them. Under pytest-xdist the
controller deploys once, hands the endpoint to workers through ``workerinput``, collects their
findings from ``workeroutput``, and alone writes the verdict.
"""

from __future__ import annotations

import atexit
import functools
import gc
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest
from _pytest.junitxml import xml_key  # the key record_testsuite_property uses; no public accessor exists

from releasetest.checks.registry import REGISTRY, SUITES
from releasetest.errors import ReleaseTestError
from releasetest.run import ReleaseRun, suites_dir
from releasetest.separation import (
    IGNORED_INI_ENV,
    PRELOADED_ENV,
    gate_rerun_command,
    ini_plugins,
    inside,
    release_ini,
    release_modules,
)
from releasetest.settings import OPTIONS, PLUGIN_PREFIX, Option, SettingError, Settings, add_options, resolve
from releasetest.suite_names import OTHER, suites_selected
from releasetest.verdict.decision import NOT_RUN
from releasetest.verdict.summary import ci_properties
from releasetest.wiring import hookspecs
from releasetest.wiring.fixtures import (  # noqa: F401  (fixtures are registered by being module attributes)
    DEPLOY_POINTER,
    champion_endpoint,
    endpoint,
    holdout,
    production_endpoint,
    production_traffic,
    release,
    release_record,
    release_run,
    release_stage,
    release_workdir,
    release_worker,
    scoring_client,
    suite_config,
    suite_of,
)
from releasetest.wiring.gate_lock import acquire_gate_lock, release_gate_lock
from releasetest.wiring.keys import (
    GATE_LOCK_KEY,
    OUTPUT_LINES_KEY,
    RUN_KEY,
    SIGTERM_KEY,
    TEAM_PATHS_KEY,
    VERDICT_KEY,
)
from releasetest.wiring.team import TeamRunner, is_team_child, run_team_tests
from releasetest.wiring.terminal import GateTerminal
from releasetest.wiring.xdist import XdistController, XdistWorker


def _cli_type(opt: Option) -> Callable[[str], str]:
    def convert(value: str) -> str:
        try:
            opt.parse(value)
        except SettingError as exc:
            raise pytest.UsageError(f"{opt.flag}: {exc}") from None
        return value

    return convert


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("releasetest", "release gate (releasetest)")
    add_options(group.addoption, prefix=PLUGIN_PREFIX, check_only=_cli_type)
    for opt in OPTIONS:
        parser.addini(opt.ini, help=opt.help, default="")
    parser.addini("release_testpaths", type="paths", default=[],
                  help="Your own release test files/folders, collected with the built-in suites "
                       "when --release-stage is given and no paths are passed.")


def _settings(config: pytest.Config) -> Settings:
    cli = {opt.name: config.getoption("release_" + opt.name) for opt in OPTIONS}
    ini = {opt.ini: config.getini(opt.ini) for opt in OPTIONS}
    ini_dir = config.inipath.parent if config.inipath else config.rootpath
    try:
        return resolve(cli, os.environ, ini, Path(config.invocation_params.dir), ini_dir)
    except SettingError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """The process that decides loads no conftest.py: the team's (beside their tests, in the release
    folder) could rewrite any test's result. Their tests run in their own pytest, which loads them."""
    ns = early_config.known_args_namespace
    if is_team_child():
        return
    stage = getattr(ns, "release_stage", None) or os.environ.get("RELEASETEST_STAGE")
    if stage or early_config.getini("release_stage"):
        ns.noconftest = True


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """An ini file in the release folder is the release's code (``addopts = -p ...``): the gate runs
    again without it, with an empty configuration, and exits as that run does. What the file made
    pytest import here (before any hook of the gate could act) goes to the re-run, which BLOCKs."""
    if hasattr(config, "workerinput") or is_team_child():
        return None
    settings = _settings(config)
    ignored = release_ini(config.inipath, settings.config) if settings.active else None
    if ignored is None:
        return None
    if settings.sources["stage"].startswith("ini"):
        raise pytest.UsageError(f"{ignored}: release_stage is set only in this ini file, which lies in the release "
                                "folder and which the gate ignores; pass --release-stage or set RELEASETEST_STAGE")
    _say(config, f"releasetest: ignoring {ignored} (it lies in the release folder, and the release's code does not "
                 "configure the gate); running the gate again without it")
    with tempfile.TemporaryDirectory(prefix="releasetest-gate-") as tmp:
        empty = Path(tmp) / "pytest.ini"
        empty.write_text("[pytest]\n", encoding="utf-8")
        cmd = gate_rerun_command(config.invocation_params.args, empty, config.rootpath)
        capman = config.pluginmanager.getplugin("capturemanager")
        if capman is not None:
            capman.suspend_global_capture(in_=True)
        env = {**os.environ, IGNORED_INI_ENV: str(ignored)}
        preloaded = [f"plugin {name} (-p in the addopts of {ignored})"
                     for name in ini_plugins(config.getini("addopts"))]
        preloaded += release_modules(sys.modules, settings.config.parent)
        if preloaded:
            env[PRELOADED_ENV] = "\n".join(preloaded)
            _say(config, "releasetest: release code ran in this process before the gate could ignore "
                         f"{ignored.name}: {'; '.join(preloaded)}; the run BLOCKs")
        child = subprocess.Popen(cmd, cwd=config.invocation_params.dir, env=env)
        forward = signal.signal(signal.SIGTERM, lambda signum, frame: child.terminate())
        try:
            return child.wait()
        finally:
            if child.poll() is None:
                child.terminate()
                child.wait()
            signal.signal(signal.SIGTERM, forward)


def pytest_configure(config: pytest.Config) -> None:
    for suite in REGISTRY:
        config.addinivalue_line("markers", suite.marker_line)
    settings = _settings(config)
    if not settings.active:
        config.stash[RUN_KEY] = ReleaseRun(settings)
        return
    _freeze_gc_at_exit()
    _refuse_checkout_config(config)
    team = TeamRunner.of(config, _failure_message)
    if team is not None:
        run = ReleaseRun(settings, worker_dir=team.workdir, handed_over=team.given.deployment())
        config.stash[RUN_KEY] = run
        config.pluginmanager.register(team, TeamRunner.name)
        try:
            run.load()
        except ReleaseTestError as exc:
            raise pytest.UsageError(f"releasetest: {exc}") from None
        return
    worker = XdistWorker.of(config)
    if worker is not None:
        run = ReleaseRun(settings, worker_dir=worker.workdir, handed_over=worker.given.deployment())
        config.pluginmanager.register(worker, XdistWorker.name)
    else:
        terminal = GateTerminal(config)
        ready_hook = config.hook.pytest_releasetest_endpoint_ready
        run = ReleaseRun(settings, progress=terminal, on_ready=lambda handle: ready_hook(config=config, handle=handle))
        config.stash[GATE_LOCK_KEY] = acquire_gate_lock(settings.verdict.parent, lambda line: _say(config, line))
    config.stash[RUN_KEY] = run
    try:
        run.load(traffic=worker is not None)
    except ReleaseTestError as exc:
        if worker is None:
            _refuse(run, exc)
        raise pytest.UsageError(f"releasetest: {exc}") from None
    if worker is None:
        if os.environ.get(IGNORED_INI_ENV):
            run.warnings.append(f"ignored {os.environ[IGNORED_INI_ENV]}: an ini file in the release folder "
                                "(the release's code does not configure the gate)")
            run.preloaded.extend(line for line in os.environ.get(PRELOADED_ENV, "").splitlines() if line)
        run.preloaded.extend(m for m in release_modules(sys.modules, settings.config.parent) if m not in run.preloaded)
        config.pluginmanager.register(ResultRecorder(run), "releasetest-results")
        config.pluginmanager.register(terminal, "releasetest-terminal")
        _interrupt_on_sigterm(config, run)
    _add_suites_to_args(config)


@functools.cache
def _freeze_gc_at_exit() -> None:
    """Have the ending interpreter skip its final garbage collection over everything a gate
    imported (numpy, scipy, hypothesis: about 0.25 s after the verdict is out; the OS reclaims the
    memory). An exit handler touches only an interpreter that is ending, never a pytest that ran
    the gate in its own process and goes on. Registered once per process."""
    atexit.register(gc.freeze)


def _refuse(run: ReleaseRun, exc: ReleaseTestError) -> NoReturn:
    """End a run the release's configuration stops: the verdict is written, and its lines printed
    (no terminal summary follows a usage error; CI reads stdout)."""
    for line in run.finish(int(pytest.ExitCode.USAGE_ERROR)).lines:
        print(line)
    raise pytest.UsageError(f"releasetest: {exc}") from None


def _refuse_checkout_config(config: pytest.Config) -> None:
    """pytest looks for its configuration above the paths on the command line: a pasted node id of a
    built-in suite, run from a source checkout of releasetest, would read releasetest's own
    configuration (and release) instead of the user's, so the wrong release would be gated."""
    inipath = config.inipath
    here = Path(config.invocation_params.dir).resolve()
    checkout = suites_dir().parent
    if (inipath is None or config.option.inifilename or inipath.parent.resolve() != checkout
            or here.is_relative_to(checkout)):
        return
    raise pytest.UsageError(
        f"{inipath}: pytest read releasetest's own configuration, found above the built-in suite on the "
        f"command line, not yours in {here}; name your configuration file with -c (e.g. -c pytest.ini)")


def _say(config: pytest.Config, line: str) -> None:
    """A line the user sees at once, even while pytest captures output."""
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is None:
        print(line, flush=True)
        return
    with capman.global_and_fixture_disabled():
        print(line, flush=True)


def _interrupt_on_sigterm(config: pytest.Config, run: ReleaseRun) -> None:
    """CI runners stop jobs with SIGTERM: treat it like Ctrl-C, so teardown and the verdict happen."""
    if threading.current_thread() is not threading.main_thread():
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        run.interrupted = "SIGTERM received"
        raise KeyboardInterrupt("SIGTERM")

    config.stash[SIGTERM_KEY] = signal.signal(signal.SIGTERM, on_sigterm)


def _add_suites_to_args(config: pytest.Config) -> None:
    """Collect the built-in suites (or the ones named); the user's other paths, or
    ``release_testpaths``, are the team's own tests, which run in their own pytest."""
    suites = suites_dir()
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        args = list(config.args)
    else:
        args = [str(p) for p in config.getini("release_testpaths")]
    here = Path(config.invocation_params.dir)
    builtin = [a for a in args if inside(here / a.split("::")[0], suites)]
    config.stash[TEAM_PATHS_KEY] = [a for a in args if a not in builtin]
    config.args = builtin or [str(suites)]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """Built-in suite files are named ``suite_*.py`` so a user's python_files never picks them twice;
    a suite file named on the command line (a pasted node id) pytest's python plugin collects itself.
    Under ``-m`` naming suites only, the other suites' files are not imported at all."""
    if (file_path.suffix == ".py" and file_path.name.startswith("suite_") and file_path.parent == suites_dir()
            and not parent.session.isinitpath(file_path)):
        run = parent.config.stash.get(RUN_KEY, None)
        selected = suites_selected(parent.config.option.markexpr or "")
        if selected is not None and file_path.stem.removeprefix("suite_") not in selected:
            return None
        if run is not None and run.settings.active and not is_team_child():
            return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Suite markers take no arguments, and a test belongs to one suite. Tests that need no endpoint
    (the drift suite's) run first, while the endpoint is still starting, instead of after it."""
    items.sort(key=lambda item: "endpoint" in getattr(item, "fixturenames", ()))
    for item in items:
        names = [m.name for m in item.iter_markers() if m.name in SUITES]
        for mark in item.iter_markers():
            if mark.name in SUITES and (mark.args or mark.kwargs):
                raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.{mark.name} takes no arguments, "
                                        f"got {mark.args or ''}{mark.kwargs or ''}")
        if len(set(names)) > 1:
            raise pytest.UsageError(f"{item.nodeid}: marked for several suites ({', '.join(sorted(set(names)))}); "
                                    "a test belongs to one suite")


def pytest_collection_finish(session: pytest.Session) -> None:
    """The selected suites prepare while the endpoint starts; an endpoint launched early that no
    selected test uses (``-m`` with no built-in test) stops now, unless the team's own tests are
    still to run."""
    run = session.config.stash.get(RUN_KEY, None)
    if run is None or not run.settings.active:
        return
    using = [item for item in session.items if "endpoint" in getattr(item, "fixturenames", ())]
    run.prepare_while_starting({suite_of(item) for item in using})
    if not using and not session.config.stash.get(TEAM_PATHS_KEY, None):
        run.deployment.cancel()


def pytest_report_header(config: pytest.Config) -> str | None:
    """The release under test and where each setting that shapes the run came from."""
    run = config.stash.get(RUN_KEY, None)
    if run is None or not run.settings.active or run.release is None:
        return None
    return (f"releasetest: release {run.release.name}@{run.release.short_id}, "
            + run.settings.origins(Path(config.invocation_params.dir)))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Each report carries its test's suite, so the recorder (on the xdist controller too) needs no
    item, and whether it erred only because the deploy failed (the terminal says that once)."""
    report = yield
    report.releasetest_suite = suite_of(item)
    report.releasetest_nodeid = _pasteable(item)
    exc = call.excinfo.value if call.excinfo is not None else None
    if isinstance(exc, pytest.skip.Exception) and exc.msg == DEPLOY_POINTER:
        report.releasetest_deploy_failed = True
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Launch the endpoint before collection, so its cold start overlaps it (the ``endpoint``
    fixture waits for it) and reading the recorded traffic. Under xdist the controller deploys
    before xdist starts the workers (they get it in workerinput, and read the traffic themselves)."""
    config = session.config
    run = config.stash.get(RUN_KEY, None)
    if run is None or not run.settings.active or hasattr(config, "workerinput") or is_team_child():
        return
    launch = not config.option.collectonly and config.pluginmanager.getplugin("dsession") is None
    if launch:
        run.deployment.start()
    try:
        run.load_traffic()  # while the endpoint starts
    except ReleaseTestError as exc:
        _refuse(run, exc)
    if launch or config.option.collectonly:
        return
    controller = XdistController(run)
    config.pluginmanager.register(controller, XdistController.name)
    controller.deploy()


def _pasteable(item: pytest.Item) -> str:
    """The test's id as the user can paste it back into pytest from where they ran it: pytest's
    own ids are relative to the rootdir, and the built-in suites live inside the installed package."""
    here = item.config.invocation_params.dir
    path = item.path.relative_to(here) if item.path.is_relative_to(here) else item.path
    return "::".join([str(path), *item.nodeid.split("::")[1:]])


def _failure_message(report: pytest.TestReport) -> str | None:
    """The one-line cause pytest shows for a failure (assertion text, ``pytest.fail`` message)
    or a skip (its reason), for the report's test tables."""
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")[:300]
    if not report.failed:
        return None
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return None
    first = lines[0]
    if first.startswith(("Failed: ", "AssertionError: ")):
        first = first.split(": ", 1)[1]
    return first[:300]


def _partial(config: pytest.Config, deselected: int) -> str | None:
    """Why this run tests only part of the release, or None for a full run."""
    why = []
    if config.option.collectonly:
        why.append("--collect-only")
    if config.option.keyword:
        why.append(f"-k {config.option.keyword}")
    if config.option.markexpr:
        why.append(f"-m {config.option.markexpr}")
    if any("::" in str(arg) for arg in config.args):
        why.append("node ids")
    if deselected and not why:
        why.append(f"{deselected} tests deselected")
    return ", ".join(why) or None


class ResultRecorder:
    """Counts every test outcome by suite; registered in the one process that writes the verdict."""

    def __init__(self, run: ReleaseRun):
        self.run = run
        self.deselected = 0

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.deselected += len(items)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        suite = getattr(report, "releasetest_suite", OTHER)
        outcome = NOT_RUN if getattr(report, "releasetest_deploy_failed", False) else report.outcome
        self.run.results.add(suite, getattr(report, "releasetest_nodeid", report.nodeid), report.when,
                             outcome, _failure_message(report), report.duration)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.run.results.add("collection", report.nodeid, "collect", "failed")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    run = config.stash.get(RUN_KEY, None)
    if run is None or not run.settings.active:
        return
    if hasattr(config, "workerinput") or is_team_child():
        return  # the worker's or team child's role gives its findings back (XdistWorker, TeamRunner)
    team_paths = config.stash.get(TEAM_PATHS_KEY, [])
    interrupted = run.interrupted or exitstatus == pytest.ExitCode.INTERRUPTED
    if team_paths and not config.option.collectonly and not interrupted:
        try:
            run_team_tests(config, run, team_paths)
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (see _interrupt_on_sigterm), while they ran
            run.interrupted = run.interrupted or "KeyboardInterrupt (Ctrl-C or SIGINT)"
            exitstatus = pytest.ExitCode.INTERRUPTED
        if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            exitstatus = pytest.ExitCode.OK  # the team's tests ran: the verdict says how they went
    recorder = config.pluginmanager.getplugin("releasetest-results")
    run.partial = _partial(config, recorder.deselected if recorder is not None else 0)
    if exitstatus == pytest.ExitCode.INTERRUPTED and not run.interrupted:
        run.interrupted = "KeyboardInterrupt (Ctrl-C or SIGINT)"
    finished = run.finish(int(exitstatus),
                          lambda verdict: config.hook.pytest_releasetest_verdict(config=config, verdict=verdict))
    session.exitstatus = finished.exit_status
    verdict = config.stash[VERDICT_KEY] = finished.verdict
    config.stash[OUTPUT_LINES_KEY] = finished.lines
    xml = config.stash.get(xml_key, None)  # LogXML writes its file in its own sessionfinish, after this one
    if xml is not None:
        for name, value in ci_properties(verdict).items():
            xml.add_global_property(name, value)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Last line of defence: no server outlives pytest, whatever happened before."""
    run = config.stash.get(RUN_KEY, None)
    if run is not None:
        run.deployment.teardown()
    lock = config.stash.get(GATE_LOCK_KEY, None)
    if lock is not None:
        del config.stash[GATE_LOCK_KEY]
        release_gate_lock(lock)
    previous = config.stash.get(SIGTERM_KEY, None)
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)
