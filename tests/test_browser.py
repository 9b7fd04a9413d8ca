"""The report opened in a real headless Chromium (Debian ``chromium``) driven by Playwright.

For a PROMOTE report (a reference-release run) and a BLOCK report (a synthetic verdict with every
finding kind, regression plots included): every section is there, nothing overflows the page at
1280 px, and every chart's text lies inside its SVG. Playwright's own browser downloads are never
used: it drives the system Chromium.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
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

#: Elements wider than the viewport, and chart texts outside their SVG, as the browser lays them out.
#: Client rectangles (not getBBox) so rotated axis titles are measured where they are drawn.
LAYOUT_JS = """() => {
  const width = document.documentElement.clientWidth;
  const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
      + (typeof e.className === 'string' && e.className ? '.' + e.className.split(' ').join('.') : '');
  const overflow = [...document.querySelectorAll('body *')]
      .filter((e) => e.getBoundingClientRect().right > width + 0.5).map(name);
  const outside = [];
  const charts = [...document.querySelectorAll('svg.plot')];
  for (const svg of charts) {
    const box = svg.getBoundingClientRect();
    for (const t of svg.querySelectorAll('text')) {
      const r = t.getBoundingClientRect();
      if (r.left < box.left - 0.5 || r.right > box.right + 0.5 || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5)
        outside.push(svg.getAttribute('aria-label') + ': ' + t.textContent);
    }
  }
  return {scrollWidth: document.documentElement.scrollWidth, width, overflow, outside,
          charts: charts.map((s) => s.getAttribute('aria-label'))};
}"""


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


def open_report(browser: Any, report: Path, shot: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Layout facts and each section's text of ``report`` at 1280 px; a full-page screenshot to ``shot``."""
    page = browser.new_page(viewport={"width": WIDTH, "height": 900})
    try:
        page.goto(report.resolve().as_uri())
        layout = page.evaluate(LAYOUT_JS)
        texts = page.evaluate("() => Object.fromEntries([...document.querySelectorAll('header[id], section[id]')]"
                              ".map((e) => [e.id, e.innerText]))")
        page.screenshot(path=str(shot), full_page=True)
    finally:
        page.close()
    data = shot.read_bytes()
    assert data[:8] == PNG_MAGIC and int.from_bytes(data[16:20], "big") == WIDTH
    assert len(data) > 50_000, "the screenshot is (nearly) blank"
    keep = os.environ.get("RELEASETEST_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / shot.name)
    return layout, texts


def assert_fits(layout: dict[str, Any]) -> None:
    assert layout["scrollWidth"] <= layout["width"], f"the page scrolls sideways: {layout['overflow'][:10]}"
    assert not layout["overflow"], f"elements wider than {WIDTH} px: {layout['overflow'][:10]}"
    assert not layout["outside"], f"chart text outside its SVG: {layout['outside'][:10]}"


def test_promote_report_of_a_reference_run(reference_run: ReferenceRun, browser: Any, tmp_path: Path) -> None:
    assert reference_run.result.ret == 0
    layout, texts = open_report(browser, reference_run.out_dir / "report.html", tmp_path / "report-promote.png")
    assert_fits(layout)
    for section in SECTIONS:
        assert texts.get(section, "").strip(), f"section {section} missing or empty in the rendered page"
    assert texts["decision"].startswith("PROMOTE · port-weather@")
    assert set(layout["charts"]) >= {"metrics against thresholds", "confusion matrix", "ROC curves, one vs rest",
                                     "precision-recall curves, one vs rest", "latency by percentile",
                                     "latency histogram", "latency over time"}
    assert "test_golden_rows" in texts["suite-smoke"]
    assert "no threshold of this kind" in texts["suite-acceptance"], "the skip reason is shown"
    assert "majority baseline" in texts["suite-acceptance"]
    assert "does not block: the azure policy tolerates it" in texts["suite-schema"]
    assert "reference_errors" not in texts["suite-acceptance"] and "requests_by_process" not in texts["suite-schema"]


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
    report = tmp_path / "report.html"
    report.write_text(render_html(seal_verdict({k: v for k, v in verdict.items() if k != "digest"}),
                                  history=[synthetic_verdict("PROMOTE")]), encoding="utf-8")
    layout, texts = open_report(browser, report, tmp_path / "report-block.png")
    assert_fits(layout)
    for section in (*SECTIONS, "history", "log"):
        assert texts.get(section, "").strip(), f"section {section} missing or empty in the rendered page"
    assert texts["decision"].startswith("BLOCK · port-weather@")
    assert {"predicted vs actual", "residuals", "ROC curves, one vs rest"} <= set(layout["charts"])
    assert "p95 112.383 ms exceeds 80 ms" in texts["suite-load"], "the load SLO failure message"
    assert "leaks a Python traceback" in texts["suite-schema"]
