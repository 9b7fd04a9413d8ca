"""What the gate shows on the terminal: progress while it works, one cause when the deploy
fails, and its summary line as the very last line.

Registered in the process that writes the verdict (the xdist controller, or the only process).
Progress is quiet under ``-q``, adds detail under ``-v``; load readings rewrite one live line on a
TTY and are plain lines in CI logs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any

import pytest

from releasetest.checks.registry import decision_lines, findings_of
from releasetest.progress import Event
from releasetest.suite_names import OTHER
from releasetest.verdict.decision import summary_line
from releasetest.verdict.formatting import isolation_of
from releasetest.wiring.fixtures import suite_of
from releasetest.wiring.keys import OUTPUT_LINES_KEY, RUN_KEY, VERDICT_KEY

#: pytest's status category for the tests that could not run because the endpoint never became
#: ready: counted in the last line ("44 not run (endpoint not ready)"), kept out of the per-test
#: listings that would otherwise repeat the pointer for each of them.
DEPLOY_CATEGORY = "not run (endpoint not ready)"
#: Server-log lines shown for a failed deploy: from its first traceback, at most this many.
LOG_LINES = 30


class GateTerminal:
    def __init__(self, config: pytest.Config):
        self.config = config
        self.live = False
        self.suite_of_test: dict[str, str] = {}
        self.started: set[str] = set()

    @property
    def reporter(self) -> Any:
        return self.config.pluginmanager.getplugin("terminalreporter")

    def __call__(self, event: Event) -> None:
        """Show a progress event at once, even while pytest captures a test's output."""
        tr = self.reporter
        verbosity = self.config.get_verbosity()
        if tr is None or verbosity < 0 or (event.detail and verbosity < 1):
            return
        capman = self.config.pluginmanager.getplugin("capturemanager")
        with capman.global_and_fixture_disabled() if capman is not None else nullcontext():
            text = f"releasetest: {event.text}"
            if event.live and tr.isatty():
                tr.rewrite(text, erase=True)
                self.live = True
                return
            if self.live:
                tr.rewrite(text, erase=True)
                tr.line("")
                self.live = False
            else:
                tr.write_line(text)

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.suite_of_test = {item.nodeid: suite_of(item) for item in items}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logstart(self, nodeid: str) -> None:
        """Each suite's start, before its first test; under xdist (no items here) at its first report."""
        if nodeid in self.suite_of_test:
            self._suite_started(self.suite_of_test[nodeid])

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "setup":
            self._suite_started(getattr(report, "releasetest_suite", OTHER))

    def _suite_started(self, suite: str) -> None:
        if suite in self.started or suite == OTHER:
            return
        self.started.add(suite)
        count = sum(1 for s in self.suite_of_test.values() if s == suite)
        self(Event(f"{suite} suite" + (f": {count} test{'s' if count != 1 else ''}" if count else "")))

    def pytest_report_teststatus(
            self, report: pytest.TestReport) -> tuple[str, str, tuple[str, dict[str, bool]]] | None:
        if getattr(report, "releasetest_deploy_failed", False) and report.when == "setup":
            return DEPLOY_CATEGORY, "n", ("NOT RUN (endpoint not ready)", {"yellow": True})
        return None

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """The releasetest section: why, the server log of a failed deploy (once), the lines beside
        the decision (the comparison with production), each suite's terminal lines (tolerated
        contract defects by kind), warnings and the files written. The gate's line comes last."""
        verdict = self.config.stash.get(VERDICT_KEY, None)
        if verdict is None:
            return
        run = self.config.stash[RUN_KEY]
        tr = terminalreporter
        tr.write_sep("-", "releasetest gate")
        deploy = verdict["deploy"]
        if not deploy["ok"] and deploy.get("answered"):  # the cause in full, where the tests point
            tr.write_line(f"  - {verdict['reasons'][0].splitlines()[0]}", red=True)
        for reason in verdict["reasons"][1:]:
            if deploy["ok"] or reason.split(":", 1)[0] not in verdict["suites"]:  # not "schema: 26 errors"
                tr.write_line(f"  - {reason.splitlines()[0]}")
        tail = deploy.get("log_tail")
        if tail and not deploy["ok"]:
            log = ((verdict.get("endpoint") or {}).get("log_path") or (deploy.get("left_behind") or {}).get("log")
                   or run.settings.verdict.parent)
            if deploy.get("answered") and "Traceback (most recent call last)" not in tail:
                tr.write_line(f"server log (no error in it: the server ran, the answer was wrong): {log}")
            else:
                tr.write_line(f"server log of the failed deploy (excerpt; full log in {log}):")
                for line in log_excerpt(tail):
                    tr.write_line(f"  | {line}")
        for line in decision_lines(verdict):
            tr.write_line(line, bold=True)
        for found in findings_of(verdict).values():
            for line in found.terminal_lines():
                tr.write_line(line, yellow=True)
        for warning in verdict.get("warnings", []):
            tr.write_line(f"warning: {warning}", yellow=True)
        isolation = isolation_of(verdict)
        if isolation is not None and isolation[1] not in verdict.get("warnings", []):  # else just shown
            tr.write_line(isolation[1])
        tr.write_line(f"verdict file: {run.output(run.settings.verdict)}")
        for line in self.config.stash.get(OUTPUT_LINES_KEY, []):
            tr.write_line(line)
        if run.settings.keep and run.handle is not None:
            pid = run.handle.info.get("pid")
            tr.write_line(f"endpoint kept running: {run.handle.scoring_uri}"
                          + (f" (stop it with: kill -TERM -{pid})" if pid else ""))

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self) -> Iterator[None]:
        """Outermost, so the gate's line comes after pytest's own last line."""
        result = yield
        verdict = self.config.stash.get(VERDICT_KEY, None)
        tr = self.reporter
        if verdict is not None and tr is not None:
            tr.write_line(summary_line(verdict), green=verdict["decision"] == "PROMOTE",
                          red=verdict["decision"] != "PROMOTE", bold=True)
        return result


def log_excerpt(tail: str) -> list[str]:
    """The part of a failed deploy's server log worth reading: its first traceback (the cause, not
    the server's wrappers chained onto it), at most :data:`LOG_LINES` lines; else the last lines."""
    lines = tail.splitlines()
    start = next((i for i, line in enumerate(lines) if "Traceback (most recent call last)" in line), None)
    if start is None:
        return lines[-15:]
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:min(end, start + LOG_LINES)]
