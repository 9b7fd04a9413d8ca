"""Writing a sealed verdict and everything made from it: the verdict file, report, CI summary,
history, and the candidate's holdout predictions.

The verdict goes first and alone decides the gate: a report or history problem becomes a
warning line, never a lost verdict. A partial run's files get a ``.partial`` suffix, so they
never replace the stage's last full verdict and report.

History keeps a release's holdout predictions only when its full run PROMOTEs: production (what
the next gate compares with) is always a release that PROMOTEd, so a BLOCKed or partial run's
predictions would never be read, and keeping only passing gates' bounds history's growth. Adding
them prunes the ones no gate needs any more (:meth:`~releasetest.verdict.history.Store.prune_predictions`),
so a history carried from CI run to CI run stays small without a command to remember.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from releasetest.errors import ReleaseTestError
from releasetest.files import write_json_atomic
from releasetest.settings import DEFAULT_KEEP_PREDICTIONS
from releasetest.verdict.formatting import plural
from releasetest.verdict.history import Store
from releasetest.verdict.predictions import Predictions, save_predictions
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
    #: ``--release-keep-predictions``: how many other releases' predictions history keeps.
    keep_predictions: int = DEFAULT_KEEP_PREDICTIONS

    def path(self, path: Path) -> Path:
        """Where a file of the run goes: with ``.partial`` before its suffix for a partial run
        (unless ``partial_ok``)."""
        if self.partial is None or self.partial_ok:
            return path
        return path.with_name(f"{path.stem}.partial{path.suffix}")


def publish(verdict: dict[str, Any], outputs: Outputs, environ: Mapping[str, str],
            predictions: Predictions | None = None) -> list[str]:
    """Write a sealed verdict and everything made from it (``predictions``: the candidate's on the
    holdout, kept when the full run PROMOTEs); return lines for the terminal."""
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
    if predictions is not None and verdict.get("decision") == "PROMOTE" and not verdict.get("partial"):
        try:
            save_predictions(outputs.history_dir, predictions)
        except OSError as exc:
            lines.append(f"warning: holdout predictions not kept in history {outputs.history_dir}: {exc}; the "
                         "next gate compares with this release by its metrics only")
        else:
            lines += _prune(outputs)
    return lines


def _prune(outputs: Outputs) -> list[str]:
    """History's retention, whenever a run adds predictions: the only time they grow."""
    try:
        pruned = Store(outputs.history_dir).prune_predictions(outputs.keep_predictions)
    except OSError as exc:
        return [f"warning: old holdout predictions not pruned from history {outputs.history_dir}: {exc}"]
    if not pruned.removed:
        return []
    return [f"history: deleted {plural(len(pruned.removed), 'holdout predictions file')} "
            f"({pruned.freed_bytes / 1e6:.1f} MB) no gate compares with any more; kept those of "
            f"{plural(pruned.kept, 'release')} (production's, and the last {outputs.keep_predictions} gated: "
            "--release-keep-predictions)"]
