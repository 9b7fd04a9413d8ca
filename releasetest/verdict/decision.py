"""The promotion gate: per-suite outcomes in, a PROMOTE/BLOCK verdict out.

The verdict is bound to the release id (a digest over artifacts, entry script and configs), so
a later promote can check it is moving exactly what was tested. A run PROMOTEs only when the
endpoint came up, every required suite ran with at least one passing test, nothing failed, and
the run was not interrupted; every other outcome is a BLOCK with the reasons spelled out.
"""


from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from releasetest import __version__
from releasetest.files import short_id

VERDICT_SCHEMA = "releasetest/verdict/1"


@dataclass
class SuiteResult:
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    failing: list[str] = field(default_factory=list)
    #: First line of each failure's message, by test id: the "why" a reviewer reads.
    messages: dict[str, str] = field(default_factory=dict)
    #: Every test of the suite: outcome and call duration, for the report's per-test table.
    tests: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "failed": self.failed, "errors": self.errors,
                "skipped": self.skipped, "failing": self.failing, "messages": self.messages,
                "tests": self.tests}


@dataclass
class Results:
    """Test outcomes by suite, fed one report at a time (from any xdist worker)."""

    suites: dict[str, SuiteResult] = field(default_factory=dict)

    def add(self, suite: str, nodeid: str, when: str, outcome: str, message: str | None = None,
            seconds: float | None = None) -> None:
        """Count one pytest report phase: setup/call/teardown, outcome passed/failed/skipped."""
        res = self.suites.setdefault(suite, SuiteResult())
        test = res.tests.setdefault(nodeid, {"outcome": "passed", "seconds": 0.0})
        if seconds is not None:
            test["seconds"] = round(test["seconds"] + seconds, 3)
        if outcome == "failed":
            test["outcome"] = "failed" if when == "call" else "error"
        elif outcome == "skipped" and test["outcome"] == "passed":
            test["outcome"] = "skipped"
        if outcome == "failed":
            if when == "call":
                res.failed += 1
            else:
                res.errors += 1
            if nodeid not in res.failing:
                res.failing.append(nodeid)
                if message:
                    res.messages[nodeid] = message
        elif outcome == "skipped" and when in ("setup", "call"):
            res.skipped += 1
            if message:
                res.messages.setdefault(nodeid, message)
        elif outcome == "passed" and when == "call":
            res.passed += 1


def decide(
    results: Results,
    required: Iterable[str],
    deploy_error: str | None,
    interrupted: str | None,
    config_error: str | None = None,
) -> tuple[str, list[str]]:
    """PROMOTE or BLOCK, and the reasons a reviewer reads first."""
    reasons: list[str] = []
    if config_error:
        reasons.append(f"configuration error: {config_error}")
    if deploy_error:
        reasons.append(f"deploy failed: {deploy_error}")
    if interrupted:
        reasons.append(f"run interrupted: {interrupted}")
    for name, res in results.suites.items():
        if res.failed or res.errors:
            shown = ", ".join(res.failing[:5]) + (" ..." if len(res.failing) > 5 else "")
            reasons.append(f"{name}: {res.failed} failed, {res.errors} errors ({shown})")
            if not deploy_error:
                for nodeid in res.failing[:5]:
                    if nodeid in res.messages:
                        reasons.append(f"{nodeid.rsplit('::', 1)[-1]}: {res.messages[nodeid]}")
    for name in required:
        got = results.suites.get(name)
        if deploy_error or config_error or (got is not None and (got.passed or got.failed or got.errors)):
            continue  # it passed something, or its failures are the reasons already
        why = f"all {got.skipped} of its tests skipped" if got is not None and got.skipped else "no test of it ran"
        reasons.append(f"required suite '{name}' did not run ({why})")
    if not reasons and not results.suites:
        reasons.append("no tests ran")
    if reasons:
        return "BLOCK", reasons
    ran = sorted(n for n, r in results.suites.items() if r.passed)
    total = sum(r.passed for r in results.suites.values())
    return "PROMOTE", [f"all {total} tests passed in suites: {', '.join(ran)}"]


def gate_exit_status(decision: str, exit_status: int) -> int:
    """The process's exit status: a BLOCK never exits 0 (it exits 1, pytest's "tests failed")."""
    return 1 if decision != "PROMOTE" and exit_status == 0 else exit_status


def settle(decided: tuple[str, list[str]], hook_decision: Any, hook_reasons: Any) -> tuple[str, list[str]]:
    """The decision after a verdict hook: it may add reasons or turn PROMOTE into BLOCK, never the reverse.

    ``decided`` is the gate's own decision and reasons; its reasons are always kept. When the hook
    blocks a run the gate would promote, the hook's own reasons come first (the gate's "all passed"
    line would say nothing about why).
    """
    decision, reasons = decided
    added = [str(r) for r in (hook_reasons if isinstance(hook_reasons, list) else []) if r not in reasons]
    if decision == "PROMOTE" and hook_decision == "PROMOTE":
        return decision, reasons + added
    if decision == "PROMOTE":
        return "BLOCK", added or [f"blocked by a pytest_releasetest_verdict hook (it set decision {hook_decision!r})"]
    return "BLOCK", reasons + added


def build_verdict(
    *,
    decision: str,
    reasons: list[str],
    warnings: list[str],
    stage: str,
    promote_to: str | None,
    target: str,
    release: dict[str, Any] | None,
    endpoint: dict[str, Any] | None,
    deploy: dict[str, Any],
    results: Results,
    findings: dict[str, Any],
    required: list[str],
    exit_status: int,
    started_at: str,
    finished_at: str,
    deployment: dict[str, Any] | None = None,
    environment: dict[str, Any] | None = None,
    git: dict[str, Any] | None = None,
    trigger: dict[str, str] | None = None,
    partial: str | None = None,
) -> dict[str, Any]:
    return {
        "schema": VERDICT_SCHEMA,
        "decision": decision,
        "reasons": reasons,
        "warnings": warnings,
        "stage": stage,
        "promote_to": promote_to,
        "target": target,
        "release": release,
        "endpoint": endpoint,
        "deployment": deployment,
        "deploy": deploy,
        "required_suites": required,
        "suites": {name: res.as_dict() for name, res in sorted(results.suites.items())},
        "findings": findings,
        "exit_status": exit_status,
        "started_at": started_at,
        "finished_at": finished_at,
        "releasetest_version": __version__,
        "environment": environment,
        "git": git,
        "trigger": trigger,
        "partial": partial is not None,
        "partial_because": partial,
    }


def summary_line(verdict: dict[str, Any]) -> str:
    """The one line a CI log shows: decision, release, stage and counts."""
    rel = verdict.get("release") or {}
    counts = {k: 0 for k in ("passed", "failed", "errors", "skipped")}
    for res in verdict.get("suites", {}).values():
        for k in counts:
            counts[k] += res[k]
    to = verdict.get("promote_to") or "(last stage)"
    text = (f"releasetest: {verdict['decision']}{' (partial)' if verdict.get('partial') else ''} "
            f"{rel.get('name', '?')}@{short_id(rel.get('id'))} stage={verdict['stage']}"
            f" -> {to}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    if verdict["decision"] != "PROMOTE":
        text += " | " + verdict["reasons"][0].splitlines()[0]
    return text

