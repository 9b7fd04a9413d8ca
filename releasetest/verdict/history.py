"""Local release history: verdicts, approvals and promotions as JSON files in one directory.

A directory of small JSON files (one per record, written atomically) needs no server, diffs
well, and can be synced to shared storage or kept as a CI artifact. Writers hold an exclusive
``flock`` on ``<dir>/.lock`` while they pick a free name and write, so concurrent gates and
reviewers on one machine never overwrite each other's records. Layout::

    <dir>/verdicts/<verdict digest>.json     a sealed verdict, as the run wrote it
    <dir>/approvals/<verdict digest>--<when>[-N].json     signed like the verdict when a key is set
    <dir>/promotions/<when>--<release id>[-N].json
    <dir>/rollbacks/<when>--<stage>[-N].json     a stage's last promotion, rolled back
    <dir>/predictions/<release id>--<holdout digest>.npz     a PROMOTEd release's holdout predictions

:meth:`Store.releases` reads them back as each release's path through the stages (gated,
approved, promoted, rolled back), the view of a release pipeline's list of releases.
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

from releasetest.checks.registry import decision_lines, key_figures
from releasetest.errors import ReleaseTestError
from releasetest.files import now_iso, short_id, write_json_atomic
from releasetest.settings import DEFAULT_KEEP_PREDICTIONS
from releasetest.verdict import signing
from releasetest.verdict.production import needed
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


def _where(target: Any, endpoint: Any) -> str:
    """Where a release ran or went: the target and the endpoint's name, else its scoring URI."""
    ep = endpoint if isinstance(endpoint, dict) else {}
    return " ".join(str(x) for x in (target, ep.get("endpoint") or ep.get("scoring_uri")) if x)


def _trigger(trigger: Any) -> str:
    """Who or what started a gate, from the verdict's ``trigger`` field (``releasetest trigger``)."""
    t = trigger if isinstance(trigger, dict) else {}
    detail = [f"{k} {t[k]}" for k in ("branch", "model", "version", "image", "cron", "artifact") if t.get(k)]
    if t.get("commit"):
        detail.append(f"commit {str(t['commit'])[:12]}")
    return " ".join([str(t.get("kind") or "manual run"), *detail])


def _sign(record: dict[str, Any]) -> None:
    """Sign a promotion or rollback record with the gate's key, when this process holds one."""
    key = signing.signing_key()
    if key is not None:
        record["signature"] = key.sign(record)


def _verdict_problem(verdict: Mapping[str, Any], key: signing.Key | None) -> str | None:
    """How a stored verdict fails its seal, when a verification key is configured: edited, unsigned ..."""
    if key is None:
        return None
    try:
        check_digest(verdict, "verdict")
    except signing.SealRefused:
        return "edited after the run"
    return signing.seal_problem(verdict, key)


def _free(path: Path) -> Path:
    """``path``, or ``<stem>-N.json`` when a record of the same second already took it."""
    n = 1
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


@dataclass(frozen=True)
class Pruned:
    """What :meth:`Store.prune_predictions` removed, and how many releases' predictions it kept."""

    removed: list[Path]
    freed_bytes: int
    kept: int


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
        key = signing.approval_signing_key()
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
        """Keep a promotion, signed with the gate's key when this process holds it."""
        name = f"{_stamp(record['at'])}--{short_id(record['release_id'])}.json"
        _sign(record)
        with self._locked():
            path = _free(self._dir("promotions") / name)
            write_json_atomic(path, record)
        return path

    def promotions(self) -> list[dict[str, Any]]:
        return sorted(self._records("promotions"), key=lambda p: str(p.get("at", "")))

    def record_rollback(self, stage: str, by: str, note: str | None = None) -> dict[str, Any]:
        """Record that ``stage``'s last promotion was rolled back, with the command its promotion
        printed for that; refuses when nothing was promoted there or that promotion is already
        rolled back. The record says what was done by ``by``; releasetest deploys nothing here."""
        if not by.strip():
            raise ReleaseTestError("a rollback needs a name: --by NAME")
        with self._locked():
            promoted = [p for p in self.promotions() if p.get("to") == stage]
            if not promoted:
                raise ReleaseTestError(f"{self.root}: no promotion to {stage} is recorded, so there is nothing to "
                                       "roll back (check --stage and --store)")
            last = promoted[-1]
            for earlier in self.rollbacks():
                if earlier.get("stage") == stage and earlier.get("promotion_at") == last.get("at"):
                    raise ReleaseTestError(
                        f"the last promotion to {stage} ({last.get('release')} at {last.get('at')}) is already "
                        f"recorded as rolled back by {earlier.get('by')} at {earlier.get('at')}")
            endpoint: dict[str, Any] = last["endpoint"] if isinstance(last.get("endpoint"), dict) else {}
            at = now_iso()
            record = {"stage": stage, "release": last.get("release"), "release_id": last.get("release_id"),
                      "verdict_digest": last.get("verdict_digest"), "promotion_at": last.get("at"),
                      "target": last.get("target"), "endpoint": endpoint,
                      "traffic_restored": endpoint.get("traffic_before"), "command": endpoint.get("rollback"),
                      "by": by.strip(), "note": note, "at": at}
            _sign(record)
            write_json_atomic(_free(self._dir("rollbacks") / f"{_stamp(at)}--{stage}.json"), record)
        return record

    def rollbacks(self) -> list[dict[str, Any]]:
        return sorted(self._records("rollbacks"), key=lambda r: str(r.get("at", "")))

    def prune_predictions(self, keep_recent: int = DEFAULT_KEEP_PREDICTIONS) -> Pruned:
        """Delete the kept holdout predictions no later gate needs: those of every release history
        may still name as production (:func:`~releasetest.verdict.production.needed`) stay, and
        of the others the ``keep_recent`` releases gated last (by their verdicts' time, not the
        files': a CI that carries history through git gives every file the checkout's time);
        predictions of a release no verdict mentions go first. Under the store's lock, so two
        gates pruning at once do not race."""
        from releasetest.verdict.predictions import stored_predictions  # numpy: not for reading history

        with self._locked():
            verdicts = self.verdicts()
            keep = {_hex(rid) for rid in needed(verdicts, self.promotions(), self.rollbacks())}
            last_gated = {_hex(str(rid)): str(v.get("finished_at") or "") for v in verdicts
                          if (rid := (v.get("release") or {}).get("id"))}
            files = stored_predictions(self.root)
            others = sorted((rid for rid in files if rid not in keep), key=lambda rid: last_gated.get(rid, ""),
                            reverse=True)
            removed = sorted(path for rid in others[max(keep_recent, 0):] for path in files[rid])
            freed = 0
            for path in removed:
                freed += path.stat().st_size
                path.unlink()
        return Pruned(removed, freed, len(files) - len(others[max(keep_recent, 0):]))

    def releases(self) -> list[dict[str, Any]]:
        """Each release's path through the stages, oldest release first: one event per gate run
        (decision, trigger, where, key figures, the lines beside the decision such as the
        comparison with production), approval, promotion and rollback, in time order,
        and ``status``, its last step. Whenever a verification key is configured, an event whose
        record is unsigned or badly signed says so in ``unverified`` (``unsigned``, ``bad
        signature`` ...): a hand-written record never reads as real."""
        found: dict[str, dict[str, Any]] = {}
        key = signing.verification_key()
        approval_key = signing.approval_verification_key()

        def entry(release_id: Any, name: Any, artifacts: Any) -> dict[str, Any]:
            rid = str(release_id or "")
            if rid not in found:
                found[rid] = {"release": str(name or "?"), "release_id": rid, "events": [],
                              "artifacts": [f"{a['name']}:{a['version']}" for a in artifacts or []
                                            if isinstance(a, dict) and "name" in a and "version" in a]}
            return found[rid]

        for v in self.verdicts():
            rel = v.get("release") or {}
            trigger: dict[str, Any] = v["trigger"] if isinstance(v.get("trigger"), dict) else {}
            reasons = v.get("reasons") if isinstance(v.get("reasons"), list) else []
            entry(rel.get("id") or (f"manifest:{v['manifest']}" if v.get("manifest") else None),
                  rel.get("name") or v.get("manifest"),
                  rel.get("artifacts"))["events"].append(
                {"step": "gated", "stage": v.get("stage"), "at": v.get("finished_at"), "by": _trigger(trigger),
                 "where": _where(v.get("target"), v.get("endpoint")), "decision": v.get("decision"),
                 "why": str(reasons[0]).splitlines()[0] if reasons and v.get("decision") != "PROMOTE" else "",
                 "partial": bool(v.get("partial")), "figures": key_figures(v), "beside": decision_lines(v),
                 "run_url": trigger.get("run_url"),
                 "verdict_digest": v.get("digest"), "unverified": _verdict_problem(v, key)})
        for a in self.approvals():
            entry(a.get("release_id"), None, None)["events"].append(
                {"step": "approved", "stage": a.get("promote_to"), "at": a.get("at"), "by": a.get("by"), "where": "",
                 "note": a.get("note"), "verdict_digest": a.get("verdict_digest"),
                 "unverified": signing.seal_problem(a, approval_key)})
        for p in self.promotions():
            entry(p.get("release_id"), p.get("release"), p.get("artifacts"))["events"].append(
                {"step": "promoted", "stage": p.get("to"), "at": p.get("at"), "by": p.get("by") or "",
                 "where": _where(p.get("target"), p.get("endpoint")), "approved_by": p.get("approved_by") or [],
                 "verdict_digest": p.get("verdict_digest"), "unverified": signing.seal_problem(p, key)})
        for r in self.rollbacks():
            entry(r.get("release_id"), r.get("release"), None)["events"].append(
                {"step": "rolled back", "stage": r.get("stage"), "at": r.get("at"), "by": r.get("by"),
                 "where": _where(r.get("target"), r.get("endpoint")), "command": r.get("command"),
                 "note": r.get("note"), "verdict_digest": r.get("verdict_digest"),
                 "unverified": signing.seal_problem(r, key)})
        releases = []
        for rel in found.values():
            rel["events"].sort(key=lambda e: str(e.get("at") or ""))
            last = rel["events"][-1]
            rel["status"] = f"{last['step']} {last.get('stage') or ''}".strip()
            if last["step"] == "gated":
                rel["status"] += f" {last.get('decision')}"
            releases.append(rel)
        return sorted(releases, key=lambda r: str(r["events"][0].get("at") or ""))
