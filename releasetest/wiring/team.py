"""The team's own tests in their own pytest: the gate's side (:func:`run_team_tests`) and the
child's (:class:`TeamRunner`), as the xdist roles are. The rules are :mod:`releasetest.separation`'s.

The child gets the deployed endpoint like an xdist worker does (a :class:`WorkerInput`), loads the
team's conftest files and ini as any pytest would, and writes back its reports and findings; the
gate adds them to its own. It never deploys, decides or writes a verdict. It runs in the sandbox
the local endpoint runs in (``--release-isolation``, :mod:`releasetest.endpoint.sandbox`): without
the CI's secrets, in a PID namespace that ends with it, writing only into its scratch folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from releasetest import lifeline
from releasetest.endpoint.local import OWNER_FILE, STOP_GRACE_S, WORKDIR_PREFIX
from releasetest.endpoint.process import wait_group_gone
from releasetest.endpoint.sandbox import choose, wrap
from releasetest.errors import ConfigError, DeployError
from releasetest.progress import Event
from releasetest.run import ReleaseRun
from releasetest.separation import (
    TEAM_INPUT_ENV,
    TeamOutcome,
    TeamReport,
    release_files,
    secret_files,
    team_command,
    team_env,
    team_outcomes,
    team_readable,
    write_team_output,
)
from releasetest.suite_names import OTHER
from releasetest.wiring.keys import RUN_KEY
from releasetest.wiring.xdist import WorkerInput

#: The one-line cause of a failed or skipped test, as the gate's recorder writes it.
Message = Callable[[pytest.TestReport], "str | None"]


def run_team_tests(config: pytest.Config, run: ReleaseRun, paths: list[str]) -> None:
    """Run the team's tests in a child pytest, in the release's sandbox, against this run's
    endpoint, wait for it, stop whatever it left, and add its results to ``run``."""
    settings = run.settings
    assert settings.stage is not None
    try:
        isolation = choose(settings.isolation)
    except ConfigError as exc:  # required, but no bwrap here: the team's code does not run unsandboxed
        run.add_team(TeamOutcome(problems=[f"not run: {exc}"]))
        return
    try:
        run.deployment.wait()  # when no built-in test was selected, nothing has waited for it yet
    except DeployError:
        pass  # the child's tests that use the endpoint fail with it, as a worker's do
    scratch = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}team-"))
    try:
        (scratch / OWNER_FILE).write_text(f"{os.getpid()}\n", encoding="ascii")  # swept if the gate is killed
        home = scratch / "team"
        home.mkdir()
        output = scratch / "output.json"
        handover = scratch / "input.json"
        handover.write_text(json.dumps({"deployment": _handed_over(run, scratch, isolation.kind != "none"),
                                        "output": str(output)}), encoding="utf-8")
        selection = [*(["-k", config.option.keyword] if config.option.keyword else []),
                     *(["-m", config.option.markexpr] if config.option.markexpr else []),
                     f"--capture={config.option.capture}"]
        here = Path(config.invocation_params.dir)
        readable = team_readable(here, [config.rootpath, config.inipath], paths, release_files(run.release, settings))
        team = team_command(paths, settings.stage, settings.config, settings.target, settings.url, selection)
        cmd = wrap(isolation, team, python=sys.executable, workdir=scratch, code_dirs=readable, cwd=here,
                   hidden=secret_files(os.environ))
        run.check_startup()
        run.progress(Event(f"your own tests, in their own pytest: {' '.join(paths)} (isolation: {isolation.kind})"))
        child = subprocess.Popen(cmd, **lifeline.child_kwargs(  # dies with the gate, even on SIGKILL
            cwd=here, env=team_env(os.environ, handover, home), start_new_session=True,
            stderr=subprocess.PIPE, text=True, errors="replace"))
        try:
            _, errors = child.communicate()
            sys.stderr.write(errors)
            status = child.returncode
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait_group_gone(child.pid, STOP_GRACE_S)
        run.add_team(team_outcomes(output, status, errors))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _handed_over(run: ReleaseRun, scratch: Path, own_pids: bool) -> dict[str, Any]:
    """The deployment as the team's pytest gets it. In a PID namespace of its own the server's pid
    names no process it can see (it would take the server for dead), so it gets none."""
    given = WorkerInput.of(run.deployment, scratch).to_dict()
    if own_pids and given["endpoint"] is not None:
        given["endpoint"]["info"].pop("pid", None)
    return given


class TeamRunner:
    """The child's role, registered in ``pytest_configure`` when the gate started this pytest."""

    name = "releasetest-team"

    def __init__(self, config: pytest.Config, given: WorkerInput, output: Path, message: Message):
        self.config = config
        self.given = given
        self.output = output
        self.message = message
        self.reports: list[TeamReport] = []

    @classmethod
    def of(cls, config: pytest.Config, message: Message) -> TeamRunner | None:
        """This process's role when the gate started it (its hand-over file named), else None."""
        handover = os.environ.get(TEAM_INPUT_ENV)
        if not handover:
            return None
        data = json.loads(Path(handover).read_text(encoding="utf-8"))
        return cls(config, WorkerInput.from_dict(data["deployment"]), Path(data["output"]), message)

    @property
    def workdir(self) -> Path:
        """The child's folder in the gate's scratch space (it writes nothing into the output folder)."""
        return Path(self.given.scratch) / "team"

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.reports.append(TeamReport(getattr(report, "releasetest_suite", OTHER),
                                       getattr(report, "releasetest_nodeid", report.nodeid), report.when,
                                       report.outcome, self.message(report), report.duration))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.reports.append(TeamReport("collection", report.nodeid, "collect", "failed"))

    def pytest_sessionfinish(self) -> None:
        write_team_output(self.output, self.reports, self.config.stash[RUN_KEY].findings)


def is_team_child() -> bool:
    """True in the pytest the gate started for the team's tests (before its configuration too)."""
    return bool(os.environ.get(TEAM_INPUT_ENV))
