"""Which release is in production, read from the history: what a candidate is compared with
when no champion is configured.

The release last promoted to the stage's ``promote_to`` (a promotion that was rolled back does
not count: traffic went back to the one before), else the last PROMOTE verdict of this stage.
A candidate never compares with itself, so a re-gate of the production release compares with
the one before it.

The module reads history's JSON records itself (:func:`read_records`) instead of through
``history.Store``: the comparison with production runs inside the checks, and the store, which
reads whole verdicts for the report, sits above them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: history's record folders (``verdict/history.py``'s layout) this module reads.
KINDS = ("verdicts", "promotions", "rollbacks")


@dataclass(frozen=True)
class Production:
    release_id: str
    release: str
    #: How it was found, for the report: "promoted to prod at ..." or "last PROMOTE of devtest at ...".
    how: str
    #: The verdict it was gated with (its metrics serve when the holdouts differ), when history has it.
    verdict: Mapping[str, Any] | None = None

    @property
    def label(self) -> str:
        """``name@<12 hex>``, as the terminal and history name a release."""
        return f"{self.release}@{self.release_id.split(':', 1)[-1][:12]}"


def _rid(verdict: Mapping[str, Any]) -> str:
    rel = verdict.get("release")
    return str(rel.get("id") or "") if isinstance(rel, Mapping) else ""


def _name(verdict: Mapping[str, Any]) -> str:
    rel = verdict.get("release")
    return str(rel.get("name") or "?") if isinstance(rel, Mapping) else "?"


def find_production(verdicts: Iterable[Mapping[str, Any]], promotions: Iterable[Mapping[str, Any]],
                    rollbacks: Iterable[Mapping[str, Any]], stage: str, promote_to: str | None,
                    candidate_id: str) -> Production | None:
    """The production release for a candidate gated on ``stage``, or None when history has none.
    Records are history's JSON records in any order (ordered here by their time stamps)."""
    verdicts = sorted(verdicts, key=lambda v: str(v.get("finished_at") or ""))
    by_digest = {str(v.get("digest")): v for v in verdicts if v.get("digest")}
    if promote_to:
        undone = {(str(r.get("stage")), str(r.get("promotion_at"))) for r in rollbacks}
        promoted = [p for p in sorted(promotions, key=lambda p: str(p.get("at") or ""))
                    if p.get("to") == promote_to and p.get("release_id") and p.get("release_id") != candidate_id
                    and (promote_to, str(p.get("at"))) not in undone]
        if promoted:
            last = promoted[-1]
            verdict = by_digest.get(str(last.get("verdict_digest")))
            return Production(str(last["release_id"]), str(last.get("release") or "?"),
                              f"promoted to {promote_to} at {last.get('at')}", verdict)
    passed = [v for v in verdicts if v.get("stage") == stage and v.get("decision") == "PROMOTE"
              and not v.get("partial") and _rid(v) and _rid(v) != candidate_id]
    if not passed:
        return None
    last_v = passed[-1]
    return Production(_rid(last_v), _name(last_v), f"last PROMOTE of {stage} at {last_v.get('finished_at')}", last_v)


def needed(verdicts: Iterable[Mapping[str, Any]], promotions: Iterable[Mapping[str, Any]],
           rollbacks: Iterable[Mapping[str, Any]]) -> set[str]:
    """The release ids whose kept predictions a later gate may still compare with: for each stage
    promoted to, the last two promotions not rolled back (production, and the release that a
    rollback of it, or a re-gate of production itself, compares with next); for each gated stage,
    its last two full PROMOTEs (production when nothing was promoted, by the same rule)."""
    undone = {(str(r.get("stage")), str(r.get("promotion_at"))) for r in rollbacks}
    by_stage: dict[str, list[str]] = {}
    for p in sorted(promotions, key=lambda p: str(p.get("at") or "")):
        if p.get("release_id") and (str(p.get("to")), str(p.get("at"))) not in undone:
            by_stage.setdefault(f"to {p.get('to')}", []).append(str(p["release_id"]))
    for v in sorted(verdicts, key=lambda v: str(v.get("finished_at") or "")):
        if v.get("decision") == "PROMOTE" and not v.get("partial") and _rid(v):
            by_stage.setdefault(f"gated {v.get('stage')}", []).append(_rid(v))
    return {rid for ids in by_stage.values() for rid in list(dict.fromkeys(reversed(ids)))[:2]}


def read_records(history_dir: Path, kind: str) -> list[dict[str, Any]]:
    """The JSON records of one of history's folders; a foreign or truncated file is skipped, as
    history skips it, so it cannot hide the rest."""
    folder = Path(history_dir) / kind
    records = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            records.append(data)
    return records


def production_in(history_dir: Path, stage: str, promote_to: str | None, candidate_id: str) -> Production | None:
    """:func:`find_production` over the history directory's records."""
    verdicts, promotions, rollbacks = (read_records(history_dir, kind) for kind in KINDS)
    return find_production(verdicts, promotions, rollbacks, stage, promote_to, candidate_id)
