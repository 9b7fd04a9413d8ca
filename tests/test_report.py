"""Report, Markdown summary, JUnit properties, verdict seal, history store: pure modules, directly."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from releasetest.errors import ConfigError, ReleaseTestError
from releasetest.release.manifest import load_release
from releasetest.settings import SettingError, parse_artifact_versions
from releasetest.verdict.history import Store, check_digest
from releasetest.verdict.report import render_html
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
        if tag in ("section", "header", "main"):
            self.open.append((tag, ident))
            if ident:
                self.text.setdefault(ident, "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("section", "header", "main") and self.open:
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
    html = render_html(synthetic_verdict(), digest_ok=True)
    doc = parse_sections(html)
    for section in (*SECTIONS, "log"):
        assert doc.text.get(section, "").strip(), f"section {section} missing or empty"
    assert doc.scripts == 0, "the report must not load anything"
    assert doc.svgs == 5  # thresholds, metrics vs references, confusion matrix, latency, timeline
    assert "http://" not in html.replace("http://127.0.0.1:5001", "").replace("http://www.w3.org/2000/svg", "")
    acceptance, schema, load = (doc.text[f"suite-{s}"] for s in ("acceptance", "schema", "load"))
    assert "balanced_accuracy" in acceptance and "majority" in acceptance and "0.998" in acceptance
    assert "curl -sS -X POST http://127.0.0.1:5001/score" in schema and "defect" in schema
    assert "p99_ms" in load and "48.7" in load and "scoringTimeoutMs / 10" in load
    assert html.count("<circle") == 2000, "the timeline is thinned to at most 2000 points"
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
    assert "| load | 2 | 1 | 0 | 0 | p50 21 ms; p95 41.2 ms; p99 118 ms; 48.7 req/s |" in md
    assert "| schema | 4 | 0 | 0 | 0 | 1 defects, 1 failures |" in md
    assert "accuracy 0.873 (min 0.9) ❌" in md
    gh = tmp_path / "step-summary.md"
    gh.write_text("earlier step\n")
    lines = publish_summary(md, tmp_path / "out" / "summary.md", {"GITHUB_STEP_SUMMARY": str(gh), "TF_BUILD": "True"})
    assert gh.read_text() == "earlier step\n" + md
    assert lines == [f"##vso[task.uploadsummary]{(tmp_path / 'out' / 'summary.md').resolve()}"]
    assert publish_summary(md, tmp_path / "s.md", {}) == []
    props = ci_properties(verdict)
    assert props["releasetest.decision"] == "BLOCK"
    assert props["releasetest.acceptance.balanced_accuracy"] == "0.861"
    assert props["releasetest.load.latency_ms.p99"] == "118"
    assert props["releasetest.schema.defects"] == "1"
    assert props["releasetest.artifact.support-vector-classifier"] == "2"


def test_store_history_approvals_and_promotions(tmp_path: Path) -> None:
    store = Store(tmp_path / "h")
    assert store.history() == []
    blocked, passed = synthetic_verdict("BLOCK"), synthetic_verdict("PROMOTE")
    store.add_verdict(blocked)
    store.approve(passed, "alice")
    store.add_verdict(passed)  # idempotent
    store.record_promotion({"release_id": passed["release"]["id"], "verdict_digest": passed["digest"],
                            "to": "production", "at": "2026-01-01T11:00:00+00:00"})
    (tmp_path / "h" / "verdicts" / "junk.json").write_text("{not json")
    rows = store.history()
    assert sorted(r["decision"] for r in rows) == ["BLOCK", "PROMOTE"]
    by_decision = {r["decision"]: r for r in rows}
    assert by_decision["PROMOTE"]["approved_by"] == ["alice"]
    assert by_decision["PROMOTE"]["promoted"] == ["production at 2026-01-01T11:00:00+00:00"]
    assert by_decision["BLOCK"]["approved_by"] == []
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
    from releasetest.verdict.promotion import PromotionRefused, approve, promote

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
    with pytest.raises(PromotionRefused, match="stage devtest promotes to 'production', not 'staging'"):
        promote(passed, "devtest", "staging", store)
    with pytest.raises(PromotionRefused, match="the release no longer matches what was tested: .*release.toml"):
        promote(passed, "devtest", "production", store)
    assert store.history() == [] and store.promotions() == []
