"""Local release history: verdicts, approvals and promotions as JSON files in one directory.

A directory of small JSON files (one per record, written atomically) needs no server, diffs
well, and can be synced to shared storage or kept as a CI artifact. Writers hold an exclusive
``flock`` on ``<dir>/.lock`` while they pick a free name and write, so concurrent gates and
reviewers on one machine never overwrite each other's records. Layout::

    <dir>/verdicts/<verdict digest>.json     a sealed verdict, as the run wrote it
    <dir>/approvals/<verdict digest>--<when>[-N].json     signed like the verdict when a key is set
    <dir>/promotions/<when>--<release id>[-N].json
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from releasetest.errors import ReleaseTestError
from releasetest.files import now_iso, write_json_atomic
from releasetest.verdict import signing
from releasetest.verdict.seal import verdict_digest


def _hex(digest: str) -> str:
    return digest.split(":", 1)[-1]


def _stamp(when: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", when)


def read_verdict(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReleaseTestError(f"{path}: no verdict file (run pytest --release-stage first)") from None
    except ValueError as exc:
        raise ReleaseTestError(f"{path}: not a verdict file: {exc}") from None
    if not isinstance(data, dict) or "decision" not in data:
        raise ReleaseTestError(f"{path}: not a verdict file (no decision)")
    return data


def check_digest(verdict: Mapping[str, Any], where: str) -> None:
    """Refuse a verdict that was edited after the run sealed it."""
    stated = verdict.get("digest")
    if not stated:
        raise signing.SealRefused(f"{where}: the verdict carries no digest, so it cannot be trusted "
                               "(re-run the gate with this releasetest version)")
    actual = verdict_digest(dict(verdict))
    if actual != stated:
        raise signing.SealRefused(
            f"{where}: verdict digest mismatch: the file says {stated} but its content hashes to {actual}; "
            "it was edited after the run (re-run the gate instead of editing the verdict)")


def check_verdict(verdict: Mapping[str, Any], where: str) -> None:
    """Refuse a verdict that was edited, or, when a verification key is configured, that is not
    signed by it (:mod:`releasetest.verdict.signing`)."""
    check_digest(verdict, where)
    signing.verify(verdict, where)


def _free(path: Path) -> Path:
    """``path``, or ``<stem>-N.json`` when a record of the same second already took it."""
    n = 1
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


@dataclass
class Store:
    root: Path

    def _dir(self, kind: str) -> Path:
        return self.root / kind

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive across processes: picking a free name and writing it is one step."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _records(self, kind: str) -> Iterator[dict[str, Any]]:
        folder = self._dir(kind)
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.json")):
            try:
                yield json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                continue  # a foreign or truncated file must not hide the rest of the history

    def add_verdict(self, verdict: Mapping[str, Any]) -> Path:
        """Keep a sealed verdict (idempotent: the file is named by its digest)."""
        check_verdict(verdict, "verdict")
        path = self._dir("verdicts") / f"{_hex(str(verdict['digest']))}.json"
        with self._locked():
            if not path.exists():
                write_json_atomic(path, dict(verdict))
        return path

    def verdicts(self) -> list[dict[str, Any]]:
        return sorted(self._records("verdicts"), key=lambda v: str(v.get("finished_at", "")))

    def earlier(self, verdict: Mapping[str, Any], limit: int = 5) -> list[dict[str, Any]]:
        """The last ``limit`` other verdicts on the same stage, oldest first: the report's history strip."""
        same = [v for v in self.verdicts() if v.get("stage") == verdict.get("stage") and not v.get("partial")
                and v.get("digest") != verdict.get("digest")]
        return same[-limit:]

    def approve(self, verdict: Mapping[str, Any], by: str, note: str | None = None) -> dict[str, Any]:
        """Record ``by``'s approval of a verdict; approving it again returns the first record, so a
        person counts once however often they approve."""
        self.add_verdict(verdict)
        record = {"verdict_digest": verdict["digest"], "release_id": (verdict.get("release") or {}).get("id"),
                  "stage": verdict.get("stage"), "promote_to": verdict.get("promote_to"), "by": by,
                  "note": note, "at": now_iso()}
        key = signing.signing_key()
        if key is not None:
            record["signature"] = key.sign(record)
        with self._locked():
            for earlier in self.approvals(str(verdict["digest"])):
                if earlier.get("by") == by:
                    return earlier
            write_json_atomic(_free(self._dir("approvals") / f"{_hex(str(verdict['digest']))}--"
                                    f"{_stamp(record['at'])}.json"), record)
        return record

    def approvals(self, verdict_digest: str | None = None) -> list[dict[str, Any]]:
        return [a for a in self._records("approvals") if verdict_digest in (None, a.get("verdict_digest"))]

    def record_promotion(self, record: dict[str, Any]) -> Path:
        name = f"{_stamp(record['at'])}--{_hex(str(record['release_id']))[:12]}.json"
        with self._locked():
            path = _free(self._dir("promotions") / name)
            write_json_atomic(path, record)
        return path

    def promotions(self) -> list[dict[str, Any]]:
        return sorted(self._records("promotions"), key=lambda p: str(p.get("at", "")))

    def history(self) -> list[dict[str, Any]]:
        """One row per verdict, oldest first, with who approved it and where it was promoted to."""
        approvals: dict[str, list[str]] = {}
        for a in self.approvals():
            approvals.setdefault(str(a.get("verdict_digest")), []).append(str(a.get("by")))
        promoted: dict[str, list[str]] = {}
        for p in self.promotions():
            promoted.setdefault(str(p.get("verdict_digest")), []).append(f"{p.get('to')} at {p.get('at')}")
        rows = []
        for v in self.verdicts():
            rel = v.get("release") or {}
            digest = str(v.get("digest"))
            rows.append({"release": rel.get("name", "?"), "release_id": str(rel.get("id") or ""),
                         "artifacts": ", ".join(f"{a['name']}:{a['version']}" for a in rel.get("artifacts", [])),
                         "stage": v.get("stage"), "decision": v.get("decision"), "when": v.get("finished_at"),
                         "partial": bool(v.get("partial")),
                         "approved_by": approvals.get(digest, []), "promoted": promoted.get(digest, []),
                         "digest": digest})
        return rows
