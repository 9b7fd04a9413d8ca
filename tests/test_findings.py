"""Typed findings: each suite's JSON form round-trips, a verdict written before the types still
reads everywhere, and each suite's summaries (terminal, CI summary, JUnit properties, report,
history figures) come from its own findings type. In-process: no endpoint is involved."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from releasetest import cli
from releasetest.checks.acceptance.findings import AcceptanceFindings, ThresholdRecord
from releasetest.checks.contract.findings import DEFECT, FAILURE, Finding, SchemaFindings
from releasetest.checks.findings import SuiteFindings
from releasetest.checks.load.findings import LoadFindings, SloRecord
from releasetest.checks.registry import FIGURE_UNITS, findings_of, key_figures
from releasetest.files import short_id
from releasetest.verdict.history import Store, check_verdict
from releasetest.verdict.report import render_html
from releasetest.verdict.summary import ci_properties, summary_markdown

from .synthetic import synthetic_verdict

#: A sealed BLOCK verdict written by releasetest 0.1.0 before findings had types (the synthetic
#: verdict of tests/synthetic.py at that commit, its load timeline thinned to keep the file small).
OLD = Path(__file__).parent / "data" / "verdict-before-typed-findings.json"


@pytest.fixture
def old() -> dict[str, Any]:
    return json.loads(OLD.read_text(encoding="utf-8"))


def _recorded(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if v is not None}


@pytest.mark.parametrize("source", ["old", "current"])
def test_each_suite_reads_its_findings_back_unchanged(source: str, old: dict[str, Any]) -> None:
    verdict = old if source == "old" else synthetic_verdict("BLOCK")
    typed = findings_of(verdict)
    assert {n: type(f) for n, f in typed.items()} == {
        "acceptance": AcceptanceFindings, "schema": SchemaFindings, "load": LoadFindings}
    for name, found in typed.items():
        assert found.to_json() == _recorded(verdict["findings"][name])
        assert type(found).from_json(found.to_json()) == found
    assert all(isinstance(t, ThresholdRecord) for t in typed["acceptance"].thresholds or [])
    assert all(isinstance(f, Finding) for f in typed["schema"].findings or [])
    assert all(isinstance(s, SloRecord) for s in typed["load"].slo or [])


def test_a_verdict_written_before_typed_findings_still_reads(old: dict[str, Any], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    check_verdict(old, "old verdict")  # its seal still holds: reading never rewrites it
    path = tmp_path / "verdict.json"
    path.write_text(json.dumps(old), encoding="utf-8")
    assert cli.main(["verdict", str(path)]) == 1  # a BLOCK
    assert f"@{short_id(old['release']['id'])} stage=devtest" in capsys.readouterr().out

    markdown = summary_markdown(old)
    assert "| schema |" in markdown and "2 defects, 1 failures" in markdown
    assert "p99 125.2 ms; 50 req/s" in markdown and "accuracy 0.9 (min 0.93) ❌" in markdown
    props = ci_properties(old)
    assert props["releasetest.acceptance.accuracy"] == "0.9"
    assert props["releasetest.load.latency_ms.p99"] == "125.2"
    assert props["releasetest.schema.defects"] == "2"

    html = render_html(old, digest_ok=True)
    for section in ("Metrics against thresholds", "Latency by percentile", "SLOs", "Other findings",
                    "does not block: the azure policy tolerates it"):
        assert section in html

    store = Store(tmp_path / "history")
    store.add_verdict(old)
    (release,) = store.releases()
    assert release["events"][0]["figures"] == {"accuracy": 0.9, "p99": 125.183, "req/s": 50.0}


def test_acceptance_summaries() -> None:
    found = AcceptanceFindings(
        metrics={"accuracy": 0.91, "rmse": "not a number"},
        thresholds=[ThresholdRecord("accuracy", "min", 0.9, 0.91, passed=True),
                    ThresholdRecord("accuracy", "min_relative_change", 0.95, 0.91, "majority", 0.9, 0.05)],
        references={"majority": {"accuracy": 0.9}})
    assert found.ci_line() == ("accuracy 0.91 (min 0.9) ✅; accuracy 0.91 (min_relative_change 0.95) ❌")
    assert found.key_figures() == {"accuracy": 0.91}
    assert found.ci_properties() == {"accuracy": "0.91", "rmse": "not a number"}
    section = found.report_section()
    assert [(r["against"], r["reference_value"]) for r in section["thresholds"]] == [
        ("minimum", None), ("majority baseline", 0.9)]
    assert section["references"]["rows"][1] == ["majority", "0.9"]
    assert "<svg" in section["plots"]["thresholds"] and found.terminal_lines() == []
    assert AcceptanceFindings(metrics={"accuracy": 0.9}).ci_line() == "accuracy 0.9"


def test_schema_summaries_group_defects_by_the_recorded_problem() -> None:
    wrong = "answered 500 (a client error should be 4xx)"
    found = SchemaFindings(policy="azure", findings=[
        Finding("string-value", DEFECT, 500, "", "curl", f"a word: {wrong}: boom", wrong),
        Finding("too-few-features", DEFECT, 500, "", "curl", f"short: {wrong}: boom", wrong),
        Finding("schema-no-auth-declared", DEFECT, 200, "", "curl", "no Bearer"),
        Finding("leak", FAILURE, 500, "", "curl", "leaks a traceback"),
    ])
    assert found.terminal_lines()[1:] == [f"  {wrong}: 2 (string-value, too-few-features)",
                                          "  schema-no-auth-declared: 1"]
    assert "azure policy" in found.terminal_lines()[0]
    assert found.ci_line() == "3 defects, 1 failures" and found.ci_properties() == {"defects": "3"}
    assert [(x["kind"], x["blocks"]) for x in found.report_section()["schema_findings"]][-1] == ("leak", True)
    assert SchemaFindings(findings=[]).terminal_lines() == [] and SchemaFindings().ci_line() == ""


def test_load_summaries() -> None:
    found = LoadFindings(latency_ms={"p50": 10.0, "p95": 40.0, "p99": 90.5}, achieved_rps=49.9,
                         slo=[SloRecord("max_error_rate", 0.01, 0.0, True), SloRecord("p99_ms", 120, 90.5, True)],
                         timeline=[[0.1, 10.0], [0.2, 95.0]], requests=2)
    assert found.ci_line() == "p50 10 ms; p95 40 ms; p99 90.5 ms; 49.9 req/s"
    assert found.key_figures() == {"p99": 90.5, "req/s": 49.9}
    assert found.ci_properties()["latency_ms.p99"] == "90.5" and "capacity_rps" not in found.ci_properties()
    assert found.timeline_bound() == ("p99_ms", 120)
    section = found.report_section()
    assert section["histogram_of"] == "all 2 requests" and set(section["plots"]) == {
        "percentiles", "histogram", "timeline"}


def test_a_partial_record_carries_only_what_it_sets() -> None:
    """A test that records capacity leaves what another test recorded (the run merges by key)."""
    assert LoadFindings(capacity_rps=140.0, capacity_steps=[]).to_json() == {"capacity_rps": 140.0,
                                                                            "capacity_steps": []}


def test_unknown_keys_and_suites_are_kept_and_shown() -> None:
    verdict = {"findings": {"load": {"p99_budget": 3, "achieved_rps": 5.0}, "mine": {"rows": 3}, "bad": "x"}}
    typed = findings_of(verdict)
    assert typed["load"].extra == {"p99_budget": 3} and typed["load"].unshown() == {"p99_budget": 3}
    assert type(typed["mine"]) is SuiteFindings and typed["mine"].unshown() == {"rows": 3}
    assert typed["bad"].to_json() == {}
    assert key_figures(verdict) == {"req/s": 5.0}
    assert list(FIGURE_UNITS) == ["accuracy", "RMSE", "p99", "req/s"]


def test_short_id() -> None:
    assert short_id("sha256:0123456789abcdef") == "0123456789ab"
    assert short_id("0123456789abcdef") == "0123456789ab"
    assert short_id(None) == short_id("") == "unknown"


def test_reading_history_loads_neither_the_template_engine_nor_the_report() -> None:
    code = ("import sys, releasetest.verdict.history; print(sorted(m for m in sys.modules if m in "
            "('jinja2', 'markupsafe', 'releasetest.verdict.report', 'releasetest.verdict.charts', 'numpy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
