"""Writing a sealed verdict and everything made from it: the verdict file, report, CI summary, history.

The verdict goes first and alone decides the gate: a report or history problem becomes a
warning line, never a lost verdict. A partial run's files get a ``.partial`` suffix, so they
never replace the stage's last full verdict and report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from releasetest.errors import ReleaseTestError
from releasetest.files import write_json_atomic
from releasetest.verdict.history import Store
from releasetest.verdict.report import write_report
from releasetest.verdict.summary import publish_summary, summary_markdown


@dataclass(frozen=True)
class Outputs:
    """Where a run's files go."""

    verdict: Path
    report: Path
    history_dir: Path
    #: Why the run tests only part of the release (``-k smoke``, node ids...), None for a full run.
    partial: str | None = None
    #: ``--release-partial-ok``: a partial run's files replace the full run's.
    partial_ok: bool = False

    def path(self, path: Path) -> Path:
        """Where a file of the run goes: with ``.partial`` before its suffix for a partial run
        (unless ``partial_ok``)."""
        if self.partial is None or self.partial_ok:
            return path
        return path.with_name(f"{path.stem}.partial{path.suffix}")


def publish(verdict: dict[str, Any], outputs: Outputs, environ: Mapping[str, str]) -> list[str]:
    """Write a sealed verdict and everything made from it; return lines for the terminal."""
    write_json_atomic(outputs.path(outputs.verdict), verdict)
    lines: list[str] = []
    if outputs.partial is not None:
        lines.append(f"partial run ({outputs.partial}): verdict marked partial"
                     + ("" if outputs.partial_ok else
                        f", written to {outputs.path(outputs.verdict).name}; the last full verdict stays "
                        "(--release-partial-ok to replace it)"))
    try:
        write_report(verdict, outputs.path(outputs.report), digest_ok=True,
                     history=Store(outputs.history_dir).earlier(verdict))
        lines.append(f"report: {outputs.path(outputs.report)}")
        lines += publish_summary(summary_markdown(verdict), outputs.path(outputs.verdict.parent / "summary.md"),
                                 environ)
    except Exception as exc:  # noqa: BLE001 - a report bug must not cost the verdict
        lines.append(f"warning: report not written: {exc!r}")
    try:
        Store(outputs.history_dir).add_verdict(verdict)
    except (OSError, ReleaseTestError) as exc:
        lines.append(f"warning: verdict not recorded in history {outputs.history_dir}: {exc}")
    return lines
