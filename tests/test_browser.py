"""The report opened in a real headless Chromium (Debian ``chromium``) driven by Playwright.

For a PROMOTE report (the shared reference-release run) and three BLOCK reports rendered from
verdicts made in-process by the product's own code (``tests/synthetic.py``: a parity BLOCK, a deploy
BLOCK and one with every finding kind; no second gate run, so the file stays fast): the first screen
at 1280 x 900 holds the decision and each blocking cause with its fix line, the evidence comes before
the folded details, a BLOCK page is at most 4,500 px tall folded, nothing overflows the page, keys,
numbers and headers never break, no value label sits under a marker, cut reasons end at a word with
the full text one click away, and every chart's text lies inside its SVG. Playwright's own browser
downloads are never used: it drives the system Chromium.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from releasetest.verdict.report import render_html
from releasetest.verdict.seal import seal_verdict

from .conftest import ReferenceRun
from .synthetic import synthetic_verdict
from .test_report import SECTIONS

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
WIDTH = 1280
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

#: Elements wider than the viewport (outside a box that scrolls), and chart texts outside their SVG,
#: as the browser lays them out. Client rectangles (not getBBox) so rotated axis titles are measured
#: where they are drawn.
LAYOUT_JS = """() => {
  const width = document.documentElement.clientWidth;
  const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
      + (typeof e.className === 'string' && e.className ? '.' + e.className.split(' ').join('.') : '');
  const overflow = [...document.querySelectorAll('body *')]
      .filter((e) => !(e.parentElement && e.parentElement.closest('.scroll')))
      .filter((e) => e.getBoundingClientRect().right > width + 0.5).map(name);
  const outside = [];
  const charts = [...document.querySelectorAll('svg.plot')];
  for (const svg of charts) {
    const box = svg.getBoundingClientRect();
    if (!box.width) continue;
    for (const t of svg.querySelectorAll('text')) {
      const r = t.getBoundingClientRect();
      if (r.left < box.left - 0.5 || r.right > box.right + 0.5 || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5)
        outside.push(svg.getAttribute('aria-label') + ': ' + t.textContent);
    }
  }
  return {scrollWidth: document.documentElement.scrollWidth, width, overflow, outside,
          charts: charts.map((s) => s.getAttribute('aria-label'))};
}"""

#: What the first screen shows (the page as it opens, detail folded): the decision banner, each
#: blocking cause with its fix line, and the order and state of what follows.
FIRST_SCREEN_JS = """() => {
  const rect = (e) => e.getBoundingClientRect();
  const top = (sel) => { const e = document.querySelector(sel); return e ? rect(e).top + window.scrollY : null; };
  return {
    height: document.documentElement.scrollHeight, viewport: window.innerHeight,
    banner: rect(document.querySelector('#decision')).bottom,
    causes: [...document.querySelectorAll('ol.causes > li')].map((li) => ({
      bottom: rect(li).bottom, kind: li.querySelector('.kind').innerText,
      fix: (li.querySelector('.fix') || {innerText: ''}).innerText})),
    evidence: [...document.querySelectorAll('section.suite, section#log')]
      .map((e) => [e.id, rect(e).top + window.scrollY]),
    folded: [...document.querySelectorAll('details.fold')].map((d) => {
      const s = d.querySelector('summary');
      return {id: d.id, open: d.open, summary: s.innerText, top: rect(d).top + window.scrollY,
              lines: Math.round(rect(s).height / parseFloat(getComputedStyle(s).lineHeight))};
    }),
    first_fold: top('details.fold'),
  };
}"""

#: With every fold open: text in key and number cells, headers and history cells split over two
#: lines (a word broken), chart value labels under a marker or bound tick, and each cut reason
#: with its full text.
WORDS_JS = """() => {
  const broken = [];
  for (const cell of document.querySelectorAll('th, td.num, td.key')) {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (!n.textContent.trim()) continue;
      const range = document.createRange();
      range.selectNodeContents(n);
      const tops = [...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top));
      if (new Set(tops).size > 1) broken.push(cell.textContent.trim().slice(0, 60));
    }
  }
  // Words of free text (messages, paths, JSON, causes): none split over two lines (a line may end
  // after a space, "-" or "/"), but a "word" longer than 100 characters, which no line holds.
  for (const box of document.querySelectorAll('td.text, ol.causes li, .why')) {
    const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (!n.parentElement.getClientRects().length || n.parentElement.closest('pre')) continue;
      for (const m of n.textContent.matchAll(/[^\\s/-]+/g)) {
        if (m[0].length > 100) continue;
        const range = document.createRange();
        range.setStart(n, m.index);
        range.setEnd(n, m.index + m[0].length);
        const tops = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
        if (tops.size > 1) broken.push(m[0].slice(0, 60));
      }
    }
  }
  const covered = [];
  for (const svg of document.querySelectorAll('svg.plot')) {
    const marks = [...svg.querySelectorAll('path[stroke="#8250df"], line[stroke-width="2.5"]')]
      .map((m) => m.getBoundingClientRect());
    for (const t of svg.querySelectorAll('text.val')) {
      const r = t.getBoundingClientRect();
      if (marks.some((m) => m.left < r.right && r.left < m.right && m.top < r.bottom && r.top < m.bottom))
        covered.push(svg.getAttribute('aria-label') + ': ' + t.textContent);
    }
  }
  const cuts = [...document.querySelectorAll('details.clip')].map((d) => {
    const summary = d.querySelector('summary');
    return {short: summary.firstChild.textContent.trim(), full: d.textContent.slice(summary.textContent.length).trim()};
  });
  return {broken, covered, cuts};
}"""
MAX_BLOCK_HEIGHT = 4500


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        pytest.skip("no Chromium at /usr/bin/chromium (Debian: apt-get install chromium); .ci/run installs it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -e '.[test]')")
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Opened:
    """A report as Chromium shows it at 1280 x 900: first as it opens (``first``), then with every fold
    open (``layout``, ``words``, ``texts``: each section's text)."""

    first: dict[str, Any]
    layout: dict[str, Any]
    words: dict[str, Any]
    texts: dict[str, str]
    revealed: str


def _shot(page: Any, shot: Path) -> None:
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data[:8] == PNG_MAGIC and int.from_bytes(data[16:20], "big") == WIDTH
    assert len(data) > 50_000, "the screenshot is (nearly) blank"
    keep = os.environ.get("RELEASETEST_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / shot.name)


def open_report(browser: Any, report: Path, shot: Path) -> Opened:
    """``report`` at 1280 px, folded as it opens and then unfolded; full-page screenshots of both
    (``shot`` and ``<shot>-open.png``). ``revealed`` is the first cut reason's text after one click."""
    page = browser.new_page(viewport={"width": WIDTH, "height": 900})
    try:
        page.goto(report.resolve().as_uri())
        first = page.evaluate(FIRST_SCREEN_JS)
        _shot(page, shot)
        revealed = ""
        if page.locator("details.clip > summary").count():
            page.locator("details.clip > summary").first.click()
            revealed = page.locator("details.clip").first.inner_text()
        page.evaluate("() => document.querySelectorAll('details').forEach((d) => { d.open = true; })")
        layout, words = page.evaluate(LAYOUT_JS), page.evaluate(WORDS_JS)
        texts = page.evaluate("() => Object.fromEntries([...document.querySelectorAll("
                              "'header[id], section[id], details[id]')].map((e) => [e.id, e.innerText]))")
        _shot(page, shot.with_name(shot.stem + "-open.png"))
    finally:
        page.close()
    return Opened(first, layout, words, texts, revealed)


def assert_fits(layout: dict[str, Any]) -> None:
    assert layout["scrollWidth"] <= layout["width"], f"the page scrolls sideways: {layout['overflow'][:10]}"
    assert not layout["overflow"], f"elements wider than {WIDTH} px: {layout['overflow'][:10]}"
    assert not layout["outside"], f"chart text outside its SVG: {layout['outside'][:10]}"


def assert_readable(opened: Opened) -> None:
    """Fits the width; keys, numbers and headers whole; no value label under a marker; each cut
    reason cut after a whole word, with its full text one click away."""
    assert_fits(opened.layout)
    words = opened.words
    assert not words["broken"], f"cells whose text breaks over two lines: {words['broken'][:10]}"
    assert not words["covered"], f"value labels covered by a marker or bound: {words['covered'][:10]}"
    for cut in words["cuts"]:
        short, full = cut["short"], cut["full"]
        assert short.endswith("…") and full.startswith(short[:-1]), cut
        last_word = short[:-1].rsplit(" ", 1)[-1]
        assert full[len(short) - 1] in " ,;:(" or len(last_word) > 100, f"cut mid-word: {short!r} of {full!r}"
    if words["cuts"]:
        assert words["cuts"][0]["full"] in opened.revealed, "one click shows the full text"


def assert_decision_first(opened: Opened, max_height: int | None = None) -> None:
    """The banner and every cause with its fix line on the first screen; evidence before the folds,
    which open closed, each with a one-line summary."""
    first = opened.first
    assert first["banner"] <= first["viewport"], "the decision banner is not on the first screen"
    for cause in first["causes"]:
        assert cause["bottom"] <= first["viewport"], f"a cause is below the first screen: {cause}"
        assert cause["fix"].startswith("What to do: "), cause
    assert first["folded"], "Release, Environment, Endpoint... are folded"
    for fold in first["folded"]:
        assert not fold["open"], f"{fold['id']} opens unfolded"
        assert " · " in fold["summary"] and fold["lines"] == 1, f"{fold['id']}: {fold['summary']!r} is not one line"
    assert {f["id"] for f in first["folded"]} >= {"release", "environment", "deployment"}
    for ident, top in first["evidence"]:
        assert top < first["first_fold"], f"evidence {ident} after the folded details"
    if max_height is not None:
        assert first["height"] <= max_height, f"{first['height']} px tall with detail folded"


def test_promote_report_of_a_reference_run(reference_run: ReferenceRun, browser: Any, tmp_path: Path) -> None:
    assert reference_run.result.ret == 0
    opened = open_report(browser, reference_run.out_dir / "report.html", tmp_path / "report-promote.png")
    assert_readable(opened)
    assert_decision_first(opened)
    texts, layout = opened.texts, opened.layout
    assert not opened.first["causes"] and not opened.first["evidence"], "a PROMOTE has nothing to explain"
    suites = {f"suite-{s}" for s in ("smoke", "acceptance", "schema", "load")}
    assert {f["id"] for f in opened.first["folded"]} >= suites, "a PROMOTE's suites are folded"
    for section in SECTIONS:
        assert texts.get(section, "").strip(), f"section {section} missing or empty in the rendered page"
    assert texts["decision"].startswith("PROMOTE · port-weather@")
    assert set(layout["charts"]) >= {"metrics against thresholds", "confusion matrix", "ROC curves, one vs rest",
                                     "precision-recall curves, one vs rest", "latency by percentile",
                                     "latency histogram", "latency over time"}
    assert "test_golden_rows" in texts["suite-smoke"]
    assert "no threshold of this kind" in texts["suite-acceptance"], "the skip reason is shown"
    assert "majority baseline" in texts["suite-acceptance"]
    assert "does not block: the azure policy tolerates it" in texts["defects"]
    assert "reference_errors" not in texts["suite-acceptance"] and "requests_by_process" not in texts["suite-schema"]


def _render(verdict: dict[str, Any], path: Path, history: list[dict[str, Any]]) -> Path:
    path.write_text(render_html(seal_verdict({k: v for k, v in verdict.items() if k != "digest"}), history=history),
                    encoding="utf-8")
    return path


def config_error_verdict() -> dict[str, Any]:
    """What a run whose manifest did not load records (``ReleaseRun.verdict`` with no release)."""
    return seal_verdict({"decision": "BLOCK", "stage": "devtest", "target": "local", "release": None,
                         "manifest": "port-weather (release.toml)", "finished_at": "2026-01-01T09:00:00+00:00",
                         "reasons": ["configuration error: release.toml: [data] holdout: data/holdout.csv does not "
                                     "exist (write it with train.py, or fix the path)"],
                         "suites": {}, "findings": {}, "deploy": {"ok": False}, "required_suites": ["smoke"]})


def test_parity_block_report_says_why_and_what_to_do_first(browser: Any, tmp_path: Path) -> None:
    verdict = synthetic_verdict("PROMOTE", "parity")
    history = [config_error_verdict(), synthetic_verdict("BLOCK")]
    opened = open_report(browser, _render(verdict, tmp_path / "parity.html", history), tmp_path / "parity.png")
    assert_readable(opened)
    assert_decision_first(opened, MAX_BLOCK_HEIGHT)
    [cause] = opened.first["causes"]
    assert cause["kind"] == "acceptance"
    assert "the served model differs from the one that wrote expected_predictions" in cause["fix"]
    assert "60 of 500 rows differ" in opened.texts["decision"]
    assert [e[0] for e in opened.first["evidence"]] == ["suite-acceptance"], "only the failing suite is evidence"
    assert "agreement 0.88" in opened.texts["suite-acceptance"]
    assert opened.words["cuts"], "the long fix line is cut, its full text a click away"
    history_text = opened.texts["history"]
    assert "port-weather (release.toml) (not loaded)" in history_text and "?@" not in history_text
    assert "configuration error: release.toml: [data] holdout" in history_text, "why the config-error run blocked"
    assert "accuracy 0.9000 is below the minimum 0.9300" in history_text, "the BLOCK's first cause, not its suite count"


def test_deploy_block_report_quotes_the_error_first(browser: Any, tmp_path: Path) -> None:
    verdict = synthetic_verdict("PROMOTE", "deploy")
    opened = open_report(browser, _render(verdict, tmp_path / "deploy.html", []), tmp_path / "deploy.png")
    assert_readable(opened)
    assert_decision_first(opened, MAX_BLOCK_HEIGHT)
    [cause] = opened.first["causes"]
    assert cause["kind"] == "deploy"
    assert "the server said “ModuleNotFoundError: No module named 'sklearn'”" in cause["fix"]
    assert [e[0] for e in opened.first["evidence"]] == ["log"], "the server log is the evidence"
    assert "44 errors" not in opened.texts["decision"].split("\n", 2)[2], "no cause per test that could not run"
    assert all(f["summary"].endswith("not run: the deploy failed") for f in opened.first["folded"]
               if f["id"].startswith("suite-"))


def test_block_report_with_every_finding_kind(browser: Any, tmp_path: Path) -> None:
    verdict = synthetic_verdict("BLOCK")
    acc = verdict["findings"]["acceptance"]
    assert acc["curves"]["roc"], "the evaluation recorded ROC curves"
    # Regression plots beside the classification ones (no run records both): the layout must hold either way.
    acc["task"] = "regression"
    acc["predicted_vs_actual"] = [[a / 3, a / 3 + (a % 7 - 3) / 4] for a in range(300)]
    acc["residuals"] = [[p, a - p] for a, p in acc["predicted_vs_actual"]]
    acc["thresholds"][0]["metric"] = "a_very_long_metric_name_for_a_per_class_recall_of_class_overcast"
    verdict["findings"]["schema"]["findings"][0]["message"] = "x" * 400  # one unbroken word
    verdict["endpoint"]["model_dir"] = "/tmp/releasetest-" + "a" * 60 + "/azureml-models"  # a path stays whole
    opened = open_report(browser, _render(verdict, tmp_path / "report.html", [synthetic_verdict("PROMOTE")]),
                         tmp_path / "report-block.png")
    assert_readable(opened)
    assert_decision_first(opened, MAX_BLOCK_HEIGHT)
    texts = opened.texts
    for section in (*SECTIONS, "history", "log"):
        assert texts.get(section, "").strip(), f"section {section} missing or empty in the rendered page"
    assert texts["decision"].startswith("BLOCK · port-weather@")
    assert {c["kind"] for c in opened.first["causes"]} == {"acceptance", "schema", "load"}
    assert any("lost to the persistence baseline 0.96 by 0.06" in c["fix"] for c in opened.first["causes"])
    assert {"predicted vs actual", "residuals", "ROC curves, one vs rest"} <= set(opened.layout["charts"])
    assert "p95 112.383 ms exceeds 80 ms" in texts["suite-load"], "the load SLO failure message"
    assert "leaks a Python traceback" in texts["suite-schema"]
