"""The report of a reference-release run, opened in a real headless Chromium (Debian ``chromium``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import ReferenceRun
from .test_report import SECTIONS, parse_sections

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def headless(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """One headless Chromium call, offline: no sync, updates, QUIC or first-run network traffic."""
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, timeout=120, check=False)


def test_reference_report_in_chromium(reference_run: ReferenceRun, tmp_path: Path) -> None:
    browser = chromium()
    if browser is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium); .ci/run installs it")
    assert reference_run.result.ret == 0
    report = reference_run.out_dir / "report.html"
    url = report.resolve().as_uri()

    dom = headless(browser, tmp_path / "profile", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr.decode(errors="replace")[-2000:]
    doc = parse_sections(dom.stdout.decode())
    for section in SECTIONS:
        assert doc.text.get(section, "").strip(), f"section {section} missing or empty in the rendered DOM"
    assert "PROMOTE · port-weather@" in doc.text["decision"]
    passed = sum(s["passed"] for s in reference_run.verdict()["suites"].values())
    assert f"all {passed} tests passed" in doc.text["decision"]
    assert "test_golden_rows" in doc.text["suite-smoke"]
    assert "balanced_accuracy" in doc.text["suite-acceptance"]
    assert "curl" in doc.text["suite-schema"]
    assert "p99" in doc.text["suite-load"]

    shot = tmp_path / "report.png"
    done = headless(browser, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,1800", url)
    assert done.returncode == 0 and shot.is_file(), done.stderr.decode(errors="replace")[-2000:]
    data = shot.read_bytes()
    assert data[:8] == PNG_MAGIC
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 1800)
    assert len(data) > 50_000, "the screenshot is (nearly) blank"
    keep = os.environ.get("RELEASETEST_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "report-reference.png")
