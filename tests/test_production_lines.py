"""The comparison with production beside the decision: its one line for each outcome, on the
report's first screen, in the CI summary and in ``releasetest history``, and a metrics-only drop
beyond the tolerance as a verdict warning; all read through the typed findings, in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from releasetest import cli
from releasetest.checks.acceptance.findings import MetricDelta, PairedTest, ProductionComparison
from releasetest.checks.registry import decision_lines, findings_warnings
from releasetest.verdict.history import Store
from releasetest.verdict.report import render_html
from releasetest.verdict.seal import seal_verdict
from releasetest.verdict.summary import summary_markdown

from .synthetic import synthetic_verdict

LABEL = "port-weather@0123456789ab"


def _comparison(paired: bool = True, regressed: bool = False, worse: int = 64, better: int = 3,
                p_value: float = 2.3e-13, candidate: float = 0.9401, production: float = 0.9559,
                holdout: str | None = "sha256:aa", message: str = "the full message") -> ProductionComparison:
    drop = (production - candidate) / production
    test = PairedTest("McNemar chi-squared, continuity-corrected", 50.0, p_value, worse, better) if paired else None
    return ProductionComparison(LABEL, "sha256:" + "01" * 32, "last PROMOTE of devtest at 2026-12-01", "classification",
                                "accuracy", paired, "sha256:aa", holdout, 3858, 0.01, 0.01, regressed, message, test,
                                drop, (MetricDelta("accuracy", production, candidate, candidate - production),))


def test_the_line_says_production_the_metric_the_test_and_what_it_means_for_the_gate() -> None:
    head = f"against production {LABEL}: accuracy 0.9559 -> 0.9401 (1.7% worse), "
    assert _comparison(regressed=True).line() == \
        head + "64 rows worse, 3 better, McNemar p = 2.3e-13: BLOCK (below 0.01, beyond the tolerated 1.0%)"
    assert _comparison(worse=5, better=2, p_value=0.45).line() == \
        head + "5 rows worse, 2 better, McNemar p = 0.45: ok (not significant at 0.01)"
    assert _comparison(candidate=0.9500).line().endswith("McNemar p = 2.3e-13: ok (within the tolerated 1.0%)")
    assert _comparison(candidate=0.96, worse=3, better=20, p_value=0.001).line().endswith(
        "(0.4% better), 3 rows worse, 20 better, McNemar p = 0.001: ok")
    assert _comparison(candidate=0.9559, worse=0, better=0, p_value=1.0).line() == \
        f"against production {LABEL}: accuracy 0.9559 -> 0.9559, no row changed: ok"
    assert _comparison(paired=False, holdout="sha256:bb").line() == \
        head + "metrics only (another holdout): warning, beyond the tolerated 1.0%"
    assert _comparison(paired=False, holdout=None, candidate=0.955).line().endswith(
        "metrics only (no readable predictions of it kept): ok")
    nothing = ProductionComparison(LABEL, "sha256:01", "how", "classification", "accuracy", False, "sha256:aa",
                                   "sha256:bb", 10, 0.01, 0.01, False, "message")
    assert nothing.line() == (f"against production {LABEL}: not compared (another holdout, and production's "
                              "verdict records no accuracy)")


def _with(comparison: ProductionComparison, decision: str = "PROMOTE") -> dict[str, Any]:
    verdict = synthetic_verdict(decision)
    verdict["findings"]["acceptance"]["production"] = comparison.to_json()
    return seal_verdict(verdict)


def test_only_a_metrics_only_drop_beyond_the_tolerance_warns() -> None:
    unpaired = _comparison(paired=False, holdout="sha256:bb", message="the holdout differs ...: metrics compared only")
    assert unpaired.warning() == "the holdout differs ...: metrics compared only"
    assert findings_warnings({"acceptance": {"production": unpaired.to_json()}, "load": {}}) == [unpaired.message]
    assert _comparison(paired=False, candidate=0.955).warning() is None  # within the tolerance
    assert _comparison(regressed=True).warning() is None  # a paired regression BLOCKs instead
    assert findings_warnings({"acceptance": {"metrics": {"accuracy": 0.9}}}) == []


def test_first_screen_and_ci_summary_carry_the_line_for_promote_and_block() -> None:
    for decision, comparison in (("PROMOTE", _comparison(worse=5, better=2, p_value=0.45)),
                                 ("BLOCK", _comparison(regressed=True))):
        verdict = _with(comparison, decision)
        assert decision_lines(verdict) == [comparison.line()]
        banner = render_html(verdict).split("<nav>")[0]
        assert comparison.line().replace(">", "&gt;") in banner
        assert 'href="#suite-acceptance">evidence</a>' in banner
        markdown = summary_markdown(verdict)
        assert f"**{comparison.line()}**" in markdown
        assert markdown.index(comparison.line()) < markdown.index("| suite |")
        assert "decides on accuracy (McNemar&#39;s test) and on balanced accuracy" in render_html(verdict)
    assert "against production" not in render_html(synthetic_verdict("PROMOTE")).split("<nav>")[0]


def test_history_shows_the_comparison_of_each_gated_release(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(tmp_path / "history")
    store.add_verdict(seal_verdict(synthetic_verdict("PROMOTE")))
    regressed = _comparison(regressed=True)
    blocked = synthetic_verdict("BLOCK")
    blocked["release"] = {**blocked["release"], "id": "sha256:" + "cc" * 32}
    blocked["findings"]["acceptance"]["production"] = regressed.to_json()
    store.add_verdict(seal_verdict(blocked))
    assert [e.get("beside") for r in store.releases() for e in r["events"]] == [[], [regressed.line()]]
    assert cli.main(["history", "--store", str(store.root)]) == 0
    out = capsys.readouterr().out.splitlines()
    gated = next(i for i, line in enumerate(out) if " gated " in line and "BLOCK " in line and line.startswith("  "))
    assert out[gated + 1].strip() == regressed.line()
    assert sum("against production" in line for line in out) == 1
