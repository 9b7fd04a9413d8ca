"""Report, Markdown summary, JUnit properties, verdict seal, history store: pure modules, directly."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from releasetest.checks.metrics import binary_auc, binary_curves, classification_metrics
from releasetest.checks.registry import findings_of
from releasetest.errors import ConfigError, ReleaseTestError
from releasetest.plugin import _failure_message
from releasetest.release.manifest import load_release
from releasetest.settings import SettingError, parse_artifact_versions
from releasetest.verdict.decision import Results, build_verdict
from releasetest.verdict.history import Store, check_digest
from releasetest.verdict.report import fmt, render_html
from releasetest.verdict.seal import seal_verdict, verdict_digest
from releasetest.verdict.summary import ci_properties, publish_summary, summary_markdown

from .conftest import EXAMPLE
from .synthetic import synthetic_verdict

SECTIONS = ("decision", "release", "environment", "deployment", "suite-smoke", "suite-acceptance",
            "suite-schema", "suite-load")


class _Sections(HTMLParser):
    """Text of each element with an id, so a test can say 'this section exists and says something'."""

    def __init__(self) -> None:
        super().__init__()
        self.text: dict[str, str] = {}
        self.open: list[tuple[str, str | None]] = []
        self.svgs = 0
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        ident = dict(attrs).get("id")
        self.svgs += tag == "svg"
        self.scripts += tag in ("script", "link", "img", "iframe")
        if tag in ("section", "header", "main", "details"):
            self.open.append((tag, ident))
            if ident:
                self.text.setdefault(ident, "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("section", "header", "main", "details") and self.open:
            self.open.pop()

    def handle_data(self, data: str) -> None:
        for _, ident in self.open:
            if ident:
                self.text[ident] += data


def parse_sections(html: str) -> _Sections:
    p = _Sections()
    p.feed(html)
    return p


def test_report_renders_every_conventional_finding() -> None:
    verdict = synthetic_verdict()
    # What a pytest_releasetest_verdict hook may add: a suite the report does not know.
    verdict["findings"]["custom"] = {"note": "<b>not bold</b>", "rows": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]}
    html = render_html(seal_verdict(verdict), digest_ok=True)
    doc = parse_sections(html)
    for section in (*SECTIONS, "log"):
        assert doc.text.get(section, "").strip(), f"section {section} missing or empty"
    assert doc.scripts == 0, "the report must not load anything"
    # thresholds, metrics vs references, confusion matrix, ROC, precision-recall, percentile curve,
    # histogram, timeline, and the drift suite's two small-multiple panels
    assert doc.svgs == 10
    assert "http://" not in html.replace("http://127.0.0.1:5001", "").replace("http://www.w3.org/2000/svg", "")
    acceptance, schema, load = (doc.text[f"suite-{s}"] for s in ("acceptance", "schema", "load"))
    assert "balanced_accuracy" in acceptance and "majority" in acceptance and "persistence" in acceptance
    assert "0.998" in acceptance, "parity agreement: 499 of 500 rows"
    assert "curl -sS -i -X POST http://127.0.0.1:5001/score" in schema and "defect" in schema
    assert "leaks a Python traceback" in schema
    findings = verdict["findings"]["load"]
    assert "p95_ms" in load and fmt(findings["latency_ms"]["p95"]) in load and fmt(findings["achieved_rps"]) in load
    assert "p99_ms = 60000: Azure ML's default scoring timeout" in load, "the SLO derivation is shown"
    assert len(findings["timeline"]) == 2000 < findings["requests"], "3000 requests, thinned to 2000 points"
    assert html.count("<circle") == 2000, "every timeline point is drawn"
    assert "2 tolerated defects" in schema, "the schema section links the tolerated defects, folded apart"
    assert "does not block: the azure policy tolerates it" in doc.text["defects"]
    assert "curl -sS -i -X POST http://127.0.0.1:5001/score" in doc.text["defects"]
    assert "&lt;script&gt;alert" in html and "<script>alert" not in html
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html, "unknown findings are shown, escaped"
    assert "suite-custom" in html
    assert "matches content" in html


def test_report_of_a_config_error_verdict() -> None:
    """The run stopped before deploy: no release, no endpoint; the report still says why."""
    verdict = seal_verdict({"decision": "BLOCK", "stage": "devtest", "target": "local", "release": None,
                            "reasons": ["configuration error: release.toml: data: missing [data] table"],
                            "suites": {}, "findings": {}, "deploy": {"ok": False}, "required_suites": ["smoke"]})
    doc = parse_sections(render_html(verdict))
    assert "missing [data] table" in doc.text["decision"]
    assert "could not be read" in doc.text["release"]
    assert "did not run" in doc.text["suite-smoke"]


def test_seal_detects_edits() -> None:
    verdict = synthetic_verdict("PROMOTE")
    check_digest(verdict, "v")
    assert verdict_digest(json.loads(json.dumps(verdict))) == verdict["digest"]
    edited = dict(verdict, decision="PROMOTE", reasons=["looks fine"])
    with pytest.raises(ReleaseTestError, match="verdict digest mismatch: .* edited after the run"):
        check_digest(edited, "v.json")
    with pytest.raises(ReleaseTestError, match="carries no digest"):
        check_digest({k: v for k, v in verdict.items() if k != "digest"}, "v.json")


def test_markdown_summary_and_ci_outputs(tmp_path: Path) -> None:
    verdict = synthetic_verdict()
    md = summary_markdown(verdict)
    assert md.startswith("## ⛔ releasetest: BLOCK port-weather@abababababab")
    assert "| load | 0 | 1 | 0 | 1 | p50 20.82 ms; p95 112.4 ms; p99 125.2 ms; 50 req/s |" in md
    schema = verdict["suites"]["schema"]
    assert schema["passed"] > 20 and schema["failed"] == 1
    assert f"| schema | {schema['passed']} | 1 | 0 | 0 | 2 defects, 1 failures |" in md
    assert "accuracy 0.9 (min 0.93) ❌" in md and "roc_auc 0.9382 (min 0.9) ✅" in md
    assert "- test_slo_at_expected_rate: load SLO failed at 50 req/s open model" in md
    gh = tmp_path / "step-summary.md"
    gh.write_text("earlier step\n")
    lines = publish_summary(md, tmp_path / "out" / "summary.md", {"GITHUB_STEP_SUMMARY": str(gh), "TF_BUILD": "True"})
    assert gh.read_text() == "earlier step\n" + md
    assert lines == [f"##vso[task.uploadsummary]{(tmp_path / 'out' / 'summary.md').resolve()}"]
    assert publish_summary(md, tmp_path / "s.md", {}) == []
    props = ci_properties(verdict)
    assert props["releasetest.decision"] == "BLOCK"
    assert props["releasetest.acceptance.balanced_accuracy"] == "0.9375"
    assert props["releasetest.load.latency_ms.p99"] == "125.2"
    assert props["releasetest.schema.defects"] == "2"
    assert props["releasetest.artifact.support-vector-classifier"] == "2"


def test_store_history_approvals_and_promotions(tmp_path: Path) -> None:
    store = Store(tmp_path / "h")
    assert store.releases() == []
    blocked, passed = synthetic_verdict("BLOCK"), synthetic_verdict("PROMOTE")
    store.add_verdict(blocked)
    store.approve(passed, "alice")
    store.add_verdict(passed)  # idempotent
    store.record_promotion({"release_id": passed["release"]["id"], "verdict_digest": passed["digest"],
                            "to": "production", "at": "2999-01-01T11:00:00+00:00"})
    (tmp_path / "h" / "verdicts" / "junk.json").write_text("{not json")
    (release,) = store.releases()  # both verdicts are of the same release
    events = [(e["step"], e.get("decision"), e["by"]) for e in release["events"]]
    assert sorted(events[:2], key=str) == [("gated", "BLOCK", "manual run"), ("gated", "PROMOTE", "manual run")]
    assert events[2:] == [("approved", None, "alice"), ("promoted", None, "")]
    assert release["status"] == "promoted production"
    with pytest.raises(ReleaseTestError, match="digest mismatch"):
        store.add_verdict(dict(blocked, decision="PROMOTE"))


def _two_versions(tmp_path: Path) -> Path:
    dest = tmp_path / "release"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("weather.csv", "__pycache__"))
    manifest = dest / "release.toml"
    text = manifest.read_text()
    block = re.search(r'\[\[artifacts\]\]\nname = "support-vector-classifier"\nversion = 1\n(files = .*)\n', text)
    assert block
    # Version 2 of the classifier: same bytes registered again (a real re-registration keeps the digest).
    manifest.write_text(text + '\n[[artifacts]]\nname = "support-vector-classifier"\nversion = 2\n'
                        + block.group(1) + '\n\n[[artifacts]]\nname = "support-vector-classifier"\nversion = 3\n'
                        + 'files = [{ path = "models/not-downloaded.onnx", sha256 = "' + "0" * 64 + '" }]\n')
    return manifest


def test_manifest_lists_versions_and_a_pick_chooses(tmp_path: Path) -> None:
    manifest = _two_versions(tmp_path)
    with pytest.raises(ConfigError, match=r"artifacts\[support-vector-classifier\].files\[0\].path: artifact file "
                                          "not found"):
        load_release(manifest)  # default = highest listed = 3, whose file is not here
    two = load_release(manifest, artifact_versions={"support-vector-classifier": "2"})
    one = load_release(manifest, artifact_versions={"support-vector-classifier": "1"})
    assert {a.name: a.version for a in two.artifacts} == {"model-scaler": "1", "support-vector-classifier": "2"}
    assert two.release_id != one.release_id, "the version is part of what was tested"
    with pytest.raises(ConfigError, match=r"version 7 was asked for \(--release-artifact\) but is not listed "
                                          r"\(listed: 1, 2, 3\)"):
        load_release(manifest, artifact_versions={"support-vector-classifier": "7"})
    with pytest.raises(ConfigError, match="names nope, which the manifest does not list"):
        load_release(manifest, artifact_versions={"nope": "1"})


def test_parse_artifact_versions() -> None:
    assert parse_artifact_versions("a=1, b=v2") == (("a", "1"), ("b", "v2"))
    for bad in ("a", "a=", "=1", "a=1,a=2"):
        with pytest.raises(SettingError):
            parse_artifact_versions(bad)


def test_approve_and_promote_refuse_before_touching_anything(tmp_path: Path) -> None:
    from releasetest.promotion import PromotionRefused, approve, promote

    store = Store(tmp_path / "h")
    blocked, passed = tmp_path / "blocked.json", tmp_path / "passed.json"
    blocked.write_text(json.dumps(synthetic_verdict("BLOCK")))
    passed.write_text(json.dumps(synthetic_verdict("PROMOTE")))
    with pytest.raises(PromotionRefused, match="cannot approve a BLOCK verdict"):
        approve(blocked, store, "alice")
    with pytest.raises(PromotionRefused, match="the verdict is BLOCK, not PROMOTE"):
        promote(blocked, "devtest", "production", store)
    with pytest.raises(PromotionRefused, match="the verdict is for stage 'devtest', not 'qa'"):
        promote(passed, "qa", "production", store)
    with pytest.raises(PromotionRefused, match="stage devtest promotes to production, not staging"):
        promote(passed, "devtest", "staging", store)
    with pytest.raises(PromotionRefused, match="the release no longer matches what was tested: .*release.toml"):
        promote(passed, "devtest", "production", store)
    assert store.releases() == [] and store.promotions() == []


def _svgs(html: str) -> dict[str, str]:
    """Each inline SVG by its aria-label."""
    return dict(re.findall(r'<svg class="plot"[^>]*aria-label="([^"]*)"[^>]*>(.*?)</svg>', html, re.S))


def _y_ticks(svg: str) -> list[float]:
    return [float(t) for t in re.findall(r'text-anchor="end" class="axis">([0-9.]+)</text>', svg)]


def test_roc_and_pr_curves_are_recorded_and_agree_with_the_auc() -> None:
    rng = np.random.default_rng(7)
    truth = rng.random(500) < 0.3
    scores = truth * 0.4 + rng.random(500)
    curves = binary_curves(truth, scores, max_points=40)
    assert curves is not None
    roc, pr = np.asarray(curves[0]), np.asarray(curves[1])
    assert len(roc) <= 40 and len(pr) <= 40
    assert roc[0].tolist() == [0.0, 0.0] and roc[-1].tolist() == [1.0, 1.0]
    assert (np.diff(roc, axis=0) >= 0).all(), "ROC is monotone in both rates"
    assert np.trapezoid(roc[:, 1], roc[:, 0]) == pytest.approx(binary_auc(truth, scores), abs=0.01)
    assert pr[-1].tolist() == [1.0, pytest.approx(0.3, abs=0.05)], "full recall: precision is the base rate"
    assert binary_curves(np.zeros(4, dtype=bool), np.arange(4.0)) is None
    labels = [0, 1, 1, 0, 1]
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.6, 0.4], [0.7, 0.3]])
    m = classification_metrics(labels, [0, 1, 1, 0, 0], (0, 1), probs)
    assert m.curves is not None and set(m.curves["roc"]) == set(m.curves["pr"]) == {"0", "1"}
    assert classification_metrics(labels, labels, (0, 1)).curves is None


def test_report_of_a_classification_run_shows_curves_rates_and_baselines() -> None:
    verdict = synthetic_verdict("PROMOTE")
    acc = verdict["findings"]["acceptance"]
    acc["reference_errors"] = {"champion": "champion url could not be scored: refused"}
    html = render_html(verdict)
    svgs = _svgs(html)
    assert {"ROC curves, one vs rest", "precision-recall curves, one vs rest"} <= set(svgs)
    assert svgs["ROC curves, one vs rest"].count("<path") == 2, "one curve per class"
    thresholds = svgs["metrics against thresholds"]
    assert "accuracy vs persistence baseline" in thresholds and "accuracy vs minimum" in thresholds
    assert "balanced_accuracy vs majority baseline" in thresholds
    assert max(float(t) for t in re.findall(r'class="axis">([0-9.]+)</text>', thresholds)) == 1.0
    doc = parse_sections(html).text["suite-acceptance"]
    assert "persistence baseline" in doc and "0.96" in doc, "the persistence baseline's accuracy"
    assert "not compared: champion: champion url could not be scored" in doc
    inputs = fmt(acc["parity"]["mismatches"][0]["inputs"])  # a parity mismatch's row is shown as JSON
    assert inputs in doc
    assert "reference_errors" not in doc and "{" not in doc.replace(inputs, "")
    assert acc["class_distribution"] == {"predicted": {"0": 0.22, "1": 0.78}, "holdout": {"0": 0.2, "1": 0.8}}
    assert "22.0%" in doc and "78.0%" in doc and "80.0%" in doc and "0.78" not in doc
    assert "390" in svgs["confusion matrix"] and "97.5%" in svgs["confusion matrix"]  # 390 of 400 true 1s
    assert "Predicted vs actual" not in html and "Residuals" not in html


def test_report_of_a_regression_verdict_built_by_build_verdict() -> None:
    """The findings shape a regression task records (docs/report.md), through the real verdict builder."""
    pva = [[float(a), float(a) + (0.5 if a % 3 else -0.7)] for a in range(40)]
    findings = {"acceptance": {
        "task": "regression", "metrics": {"rmse": 0.58, "mae": 0.57},
        "thresholds": [{"metric": "rmse", "kind": "max", "bound": 1.0, "value": 0.58, "reference": None,
                        "passed": True}],
        "predicted_vs_actual": pva, "residuals": [[p, a - p] for a, p in pva]}}
    results = Results()
    results.add("acceptance", "suite_acceptance.py::test_absolute_minimums", "call", "passed", seconds=0.1)
    verdict = seal_verdict(build_verdict(
        decision="PROMOTE", reasons=["all 1 tests passed"], warnings=[], stage="devtest", promote_to="production",
        target="local", release=None, endpoint=None, deploy={"ok": True}, results=results, findings=findings,
        required=["acceptance"], exit_status=0, started_at="t0", finished_at="t1"))
    html = render_html(verdict)
    svgs = _svgs(html)
    assert svgs["predicted vs actual"].count("<circle") == 40
    assert svgs["residuals"].count("<circle") == 40
    assert {"ROC curves, one vs rest", "confusion matrix"}.isdisjoint(svgs)
    doc = parse_sections(html).text["suite-acceptance"]
    assert "rmse" in doc and "Other findings" not in doc, "the regression points are plotted, not dumped"


def test_load_charts_are_scaled_to_the_data_and_state_an_slo_off_the_chart() -> None:
    verdict = synthetic_verdict("PROMOTE")
    load = verdict["findings"]["load"]
    load["slo"] = [{"name": "p99_ms", "bound": 1000.0, "value": 8.3, "passed": True}]
    load["latency_ms"] = {"p50": 3.3, "p90": 6.1, "p95": 6.7, "p99": 8.3, "p99_9": 30.3, "max": 30.3}
    load["timeline"] = [[i / 40, 3.0 + (27.3 if i == 7 else i % 5)] for i in range(120)]
    load["requests"] = 120
    svgs = _svgs(render_html(verdict))
    for name in ("latency by percentile", "latency over time"):
        assert max(_y_ticks(svgs[name])) <= 40, f"{name}: scaled to the data (max 30.3 ms), not to the 1000 ms SLO"
        assert "p99_ms 1000 ms: above the chart" in svgs[name]
    assert "99.9%" in svgs["latency by percentile"] and "50%" in svgs["latency by percentile"]
    assert svgs["latency histogram"].count("<rect") == 24
    load["slo"] = [{"name": "p99_ms", "bound": 20.0, "value": 8.3, "passed": True}]
    svgs = _svgs(render_html(verdict))
    over_time = svgs["latency over time"]
    assert 'stroke-dasharray="6 4"' in over_time and "above the chart" not in over_time


def test_severity_matches_the_decision_and_internal_keys_stay_hidden() -> None:
    verdict = synthetic_verdict("PROMOTE")
    assert verdict["findings"]["schema"]["policy"] == "azure" and "requests_by_process" in verdict["findings"]["schema"]
    assert {f["severity"] for f in verdict["findings"]["schema"]["findings"]} == {"defect"}
    html = render_html(verdict)
    schema = html[html.index('id="suite-schema"'):html.index('id="suite-load"')]
    defects = html[html.index('id="defects"'):]
    assert "does not block: the azure policy tolerates it" in defects
    assert "2 tolerated under the azure policy" in defects
    assert 'badge failed' not in schema and "2 tolerated defects" in schema
    assert "requests_by_process" not in schema
    assert '<p class="prewrap">rate = 50: set in [load] of release.toml\nduration_s = 62' in html


def test_history_strip_compares_with_earlier_runs_on_the_stage(tmp_path: Path) -> None:
    store = Store(tmp_path / "h")
    earlier = synthetic_verdict("BLOCK")
    other_stage = seal_verdict(dict(synthetic_verdict("PROMOTE"), stage="qa", finished_at="2026-01-01T09:00:00"))
    store.add_verdict(earlier)
    store.add_verdict(other_stage)
    now = synthetic_verdict("PROMOTE")
    assert store.earlier(now) == [earlier]
    doc = parse_sections(render_html(now, history=store.earlier(now)))
    strip = doc.text["history"]
    assert "this run" in strip and "0.98" in strip and "28 ms" in strip, "this run: accuracy 0.98, p99 28 ms"
    assert "BLOCK" in strip and "125.2 ms" in strip, "the earlier BLOCK: p99 125.2 ms"
    assert "50" in strip, "achieved req/s"
    assert "history" not in parse_sections(render_html(now)).text, "no strip without earlier runs"


def test_skip_reasons_reach_the_verdict_and_the_report() -> None:
    report = pytest.TestReport("suite_load.py::test_capacity", ("suite_load.py", 1, "test_capacity"), {},
                               "skipped", ("suite_load.py", 2, "Skipped: no capacity search configured"), "setup")
    message = _failure_message(report)
    assert message == "no capacity search configured"
    results = Results()
    results.add("load", report.nodeid, "setup", "skipped", message, 0.0)
    assert results.suites["load"].messages == {report.nodeid: "no capacity search configured"}
    verdict = synthetic_verdict("PROMOTE")
    verdict["suites"]["load"] = results.suites["load"].as_dict()
    assert "no capacity search configured" in parse_sections(render_html(verdict)).text["suite-load"]


def test_blocking_causes_say_what_to_do_for_each_kind_of_failure() -> None:
    from releasetest.checks.acceptance.findings import ProductionComparison
    from releasetest.verdict.report import blocking_causes, release_label

    parity = synthetic_verdict("PROMOTE", "parity")
    parity["findings"]["acceptance"]["production"] = ProductionComparison(
        production="port-weather@0123456789ab", production_id="sha256:" + "01" * 32, how="last promoted to production",
        task="classification", metric="accuracy", paired=True, candidate_holdout="sha256:aa",
        production_holdout="sha256:aa", rows=500, p_threshold=0.01, tolerance=0.01, regressed=True,
        message="regression against production port-weather@0123456789ab: McNemar p = 0.002").to_json()
    parity["reasons"].append("blocked by the team's hook: model card missing")
    causes = blocking_causes(parity, findings_of(parity))
    assert [c["kind"] for c in causes] == ["acceptance", "acceptance", "other"]
    drift, regression, hook = causes
    assert hook["cause"] == "blocked by the team's hook: model card missing"
    assert drift["fix"].startswith("the served model differs from the one that wrote expected_predictions: ")
    assert "60 of 500 rows differ" in drift["cause"] and drift["anchor"] == "suite-acceptance"
    assert regression["cause"].startswith("regression against production port-weather@0123456789ab")
    assert "keep the production release" in regression["fix"]
    block = synthetic_verdict("BLOCK")
    lost = [c["fix"] for c in blocking_causes(block, findings_of(block)) if "persistence" in c["fix"]]
    assert lost == ["accuracy 0.9 lost to the persistence baseline 0.96 by 0.06 and needs 0.065 more to pass: improve "
                    "the model, or change this bound in [acceptance.thresholds] if it is wrong"]
    assert blocking_causes(synthetic_verdict("PROMOTE"), {}) == []
    config = {"decision": "BLOCK", "release": None, "manifest": "wine (release.toml)",
              "reasons": ["configuration error: release.toml: data.holdout: holdout file not found"]}
    assert [c["kind"] for c in blocking_causes(config, {})] == ["configuration"]
    assert release_label(config) == "wine (release.toml) (not loaded)"


def test_more_than_five_causes_fold_after_the_fifth() -> None:
    verdict = synthetic_verdict("BLOCK")
    verdict["reasons"] += [f"hook reason {i}" for i in range(4)]
    html = render_html(verdict)
    shown, folded = html.split('class="more-causes"')
    assert shown.count('<span class="kind">') == 5 and "and 3 more blocking failures" in folded
    assert folded.count('<span class="kind">') == 3 and "hook reason 3" in folded

