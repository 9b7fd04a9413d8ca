"""pytest entry point (``pytest11``): options, markers, fixtures and hooks; wiring only.

The work happens in pytest-free modules (:mod:`releasetest.run`, :mod:`releasetest.verdict`,
:mod:`releasetest.endpoint`); this module moves pytest's events into them. Under pytest-xdist the
controller deploys once, hands the endpoint to workers through ``workerinput``, collects their
findings from ``workeroutput``, and alone writes the verdict.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _pytest.junitxml import xml_key  # the key record_testsuite_property uses; no public accessor exists

from releasetest.checks.registry import REGISTRY, SUITES
from releasetest.errors import ReleaseTestError
from releasetest.run import ReleaseRun, suites_dir
from releasetest.settings import OPTIONS, PLUGIN_PREFIX, Option, SettingError, add_options, resolve
from releasetest.suite_names import OTHER
from releasetest.verdict.summary import ci_properties
from releasetest.wiring import hookspecs
from releasetest.wiring.fixtures import (  # noqa: F401  (fixtures are registered by being module attributes)
    DEPLOY_POINTER,
    champion_endpoint,
    endpoint,
    holdout,
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
from releasetest.wiring.keys import GATE_LOCK_KEY, OUTPUT_LINES_KEY, RUN_KEY, SIGTERM_KEY, VERDICT_KEY
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


def pytest_configure(config: pytest.Config) -> None:
    for suite in REGISTRY:
        config.addinivalue_line("markers", suite.marker_line)
    cli = {opt.name: config.getoption("release_" + opt.name) for opt in OPTIONS}
    ini = {opt.ini: config.getini(opt.ini) for opt in OPTIONS}
    ini_dir = config.inipath.parent if config.inipath else config.rootpath
    try:
        settings = resolve(cli, os.environ, ini, Path(config.invocation_params.dir), ini_dir)
    except SettingError as exc:
        raise pytest.UsageError(str(exc)) from None
    if not settings.active:
        config.stash[RUN_KEY] = ReleaseRun(settings)
        return
    _refuse_checkout_config(config)
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
        run.load()
    except ReleaseTestError as exc:
        if worker is None:
            finished = run.finish(int(pytest.ExitCode.USAGE_ERROR))
            for line in finished.lines:  # no terminal summary after a usage error; CI reads stdout
                print(line)
        raise pytest.UsageError(f"releasetest: {exc}") from None
    if worker is None:
        config.pluginmanager.register(ResultRecorder(run), "releasetest-results")
        config.pluginmanager.register(terminal, "releasetest-terminal")
        _interrupt_on_sigterm(config, run)
    _add_suites_to_args(config)


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
    """Collect the built-in suites, plus the user's paths or ``release_testpaths``."""
    suites = str(suites_dir())
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        args = list(config.args)
    else:
        args = [str(p) for p in config.getini("release_testpaths")]
    if not any(Path(suites) in (path, *path.parents) for path in (Path(a.split("::")[0]).resolve() for a in args)):
        args.append(suites)
    config.args = args


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """Built-in suite files are named ``suite_*.py`` so a user's python_files never picks them twice;
    a suite file named on the command line (a pasted node id) pytest's python plugin collects itself."""
    if (file_path.suffix == ".py" and file_path.name.startswith("suite_") and file_path.parent == suites_dir()
            and not parent.session.isinitpath(file_path)):
        run = parent.config.stash.get(RUN_KEY, None)
        if run is not None and run.settings.active:
            return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Suite markers take no arguments, and a test belongs to one suite."""
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
    """An endpoint launched early that no selected test uses (``-k`` on the user's own tests) stops now."""
    run = session.config.stash.get(RUN_KEY, None)
    if run is not None and not any("endpoint" in getattr(item, "fixturenames", ()) for item in session.items):
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
    if isinstance(exc, pytest.fail.Exception) and exc.msg == DEPLOY_POINTER:
        report.releasetest_deploy_failed = True
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Launch the endpoint before collection, so its cold start overlaps it (the ``endpoint``
    fixture waits for it). Under xdist the controller deploys before xdist starts the workers
    (they get it in workerinput)."""
    config = session.config
    run = config.stash.get(RUN_KEY, None)
    if run is None or not run.settings.active or hasattr(config, "workerinput") or config.option.collectonly:
        return
    if config.pluginmanager.getplugin("dsession") is None:
        run.deployment.start()
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
        self.run.results.add(suite, getattr(report, "releasetest_nodeid", report.nodeid), report.when,
                             report.outcome, _failure_message(report),
                             report.duration)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.run.results.add("collection", report.nodeid, "collect", "failed")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    run = config.stash.get(RUN_KEY, None)
    if run is None or not run.settings.active:
        return
    if hasattr(config, "workerinput"):
        return  # the worker's role gives its findings back (see XdistWorker)
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
