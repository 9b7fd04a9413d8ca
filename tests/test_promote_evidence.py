"""PROMOTE needs evidence, not only passed tests: a required suite whose tests pass without
measuring anything, or whose recorded measurements failed, BLOCKs.

The routes are a plugin that reports every test passed without running it (no fixture, no
request), and one that replaces each test's ``runtest`` (the fixtures still measure); both are
given with ``-p`` as a CI's command line would, and the gate runs in this process against the
recorded-answers target.
"""

from __future__ import annotations

import pytest

from releasetest.checks.registry import evidence

from .conftest import ReleaseProject
from .recorded_target import RecordedTarget

NEVER_RUN = """
import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for when in ("setup", "call", "teardown"):
        call = pytest.CallInfo.from_call(lambda: None, when)
        item.ihook.pytest_runtest_logreport(report=item.ihook.pytest_runtest_makereport(item=item, call=call))
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True
"""

SKIP_BODY = """
def pytest_collection_modifyitems(items):
    for item in items:
        item.runtest = lambda: None
"""


def test_tests_passed_without_measuring_block(release_project: ReleaseProject, recorded: RecordedTarget) -> None:
    release_project.pytester.makepyfile(pass_everything=NEVER_RUN)
    release_project.pytester.syspathinsert()
    release_project.run_inprocess("-p", "pass_everything", "--release-stage", "devtest",
                                  *recorded.args)
    verdict = release_project.verdict()
    assert all(not s["failed"] and not s["errors"] and s["passed"] for s in verdict["suites"].values())
    assert verdict["decision"] == "BLOCK"
    reasons = "\n".join(verdict["reasons"])
    assert "required suite acceptance recorded no evidence (no metrics" in reasons
    for suite in ("smoke", "schema", "load"):
        assert f"required suite {suite} recorded no evidence" in reasons


def test_measured_failure_behind_a_pass_blocks(release_project: ReleaseProject, recorded: RecordedTarget) -> None:
    release_project.edit("release.toml", "accuracy = { min = 0.93,", "accuracy = { min = 0.999,")
    release_project.pytester.makepyfile(skip_body=SKIP_BODY)
    release_project.pytester.syspathinsert()
    release_project.run_inprocess("-p", "skip_body", "--release-stage", "devtest", "--release-require", "acceptance",
                                  "-m", "acceptance", *recorded.args)
    verdict = release_project.verdict()
    assert verdict["suites"]["acceptance"]["passed"] and not verdict["suites"]["acceptance"]["failed"]
    assert verdict["decision"] == "BLOCK"
    assert any(r.startswith("required suite acceptance recorded evidence that contradicts its passed tests: "
                            "accuracy min 0.999 failed (got 0.9") for r in verdict["reasons"]), verdict["reasons"]


@pytest.mark.parametrize(("suite", "findings", "problem"), [
    ("smoke", {"probes": {"test_liveness": {"sent": 1, "answered": 1}}}, None),
    ("smoke", {"probes": {"test_liveness": {"sent": 1, "answered": 0}}}, "recorded no evidence"),
    ("schema", {"requests_sent": 12, "findings": []}, None),
    ("schema", {"requests_sent": 12, "findings": [{"kind": "nan-value", "severity": "failure"}]},
     "contradicts its passed tests: contract failures nan-value"),
    ("load", {"requests": 280, "latency_ms": {"p99": 9.0}, "slo": [{"name": "p99", "bound": 5, "value": 9.0,
                                                                    "passed": False}]},
     "contradicts its passed tests: SLO p99 9 against 5 failed"),
    ("load", {"latency_ms": {"p99": 9.0}}, "recorded no evidence"),
])
def test_each_findings_type_answers_for_its_evidence(suite: str, findings: dict, problem: str | None) -> None:
    found = evidence({suite: findings}, [suite])
    assert (problem in found[suite]) if problem else not found, found
