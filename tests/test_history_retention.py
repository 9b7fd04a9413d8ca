"""History's retention of holdout predictions: what a later gate may compare with stays (each
stage's production, the release a rollback restores, the last full PROMOTEs), plus the N releases
gated last; the rest goes, on publish and with ``releasetest history --prune``. In this process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from releasetest import cli
from releasetest.verdict.history import Store
from releasetest.verdict.predictions import Predictions, load_predictions, save_predictions, stored_predictions
from releasetest.verdict.production import production_in
from releasetest.verdict.publish import Outputs, publish
from releasetest.verdict.seal import seal_verdict

from .synthetic import synthetic_verdict

DIGEST = "sha256:" + "d" * 64


def rid(n: int) -> str:
    return "sha256:" + f"{n:02d}" * 32


def _keep(root: Path, n: int) -> None:
    save_predictions(root, Predictions.encode(rid(n), DIGEST, "classification", [0, 1, 1], (0, 1)))


def _gated(store: Store, n: int, decision: str = "PROMOTE", stage: str = "devtest") -> dict[str, Any]:
    verdict = {"decision": decision, "stage": stage, "promote_to": "prod", "partial": False,
               "release": {"id": rid(n), "name": f"r{n}"}, "finished_at": f"2026-12-01T{n:02d}:00:00+00:00"}
    sealed = seal_verdict(verdict)
    store.add_verdict(sealed)
    return sealed


def _kept(root: Path) -> set[int]:
    return {int(h[:2]) for h in stored_predictions(root)}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """r1..r8 PROMOTEd on devtest in that order, each with kept predictions; r2 then r3 promoted to
    prod and r3's promotion rolled back (so r2 is production again); r9's file has no verdict."""
    store = Store(tmp_path / "history")
    for n in range(1, 9):
        _gated(store, n)
        _keep(store.root, n)
    for n, at in ((2, "2026-12-01T10:00:00+00:00"), (3, "2026-12-01T11:00:00+00:00")):
        store.record_promotion({"release": f"r{n}", "release_id": rid(n), "to": "prod", "at": at})
    store.record_rollback("prod", "bob")
    _keep(store.root, 9)
    return store


def test_prune_keeps_what_a_gate_may_compare_with_and_the_last_gated(store: Store) -> None:
    pruned = store.prune_predictions(keep_recent=2)
    # needed: r2 (production after the rollback), r8 and r7 (devtest's last two PROMOTEs);
    # then the two others gated last, r6 and r5; r9 (no verdict) goes first
    assert _kept(store.root) == {2, 5, 6, 7, 8}
    assert sorted(int(p.name[:2]) for p in pruned.removed) == [1, 3, 4, 9]
    assert pruned.kept == 5 and pruned.freed_bytes > 0 and not any(p.exists() for p in pruned.removed)
    production = production_in(store.root, "devtest", "prod", rid(20))
    assert production is not None and production.release_id == rid(2)
    assert load_predictions(store.root, rid(2), DIGEST) is not None

    again = store.prune_predictions(keep_recent=2)
    assert again.removed == [] and again.kept == 5
    assert [int(p.name[:2]) for p in store.prune_predictions(keep_recent=0).removed] == [5, 6]
    assert _kept(store.root) == {2, 7, 8}


def test_the_release_a_rollback_would_restore_stays(store: Store) -> None:
    store.record_promotion({"release": "r4", "release_id": rid(4), "to": "prod", "at": "2026-12-01T12:00:00+00:00"})
    store.prune_predictions(keep_recent=0)
    assert _kept(store.root) == {2, 4, 7, 8}  # prod's r4, the r2 a rollback of it restores, devtest's last two
    store.record_rollback("prod", "bob")
    assert production_in(store.root, "devtest", "prod", rid(20)).release_id == rid(2)


def test_blocked_and_partial_runs_are_not_needed(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _gated(store, 1)
    _gated(store, 2, "BLOCK")
    store.add_verdict(seal_verdict({"decision": "PROMOTE", "stage": "devtest", "partial": "-k smoke",
                                    "release": {"id": rid(3)}, "finished_at": "2026-12-01T03:00:00+00:00"}))
    for n in (1, 2, 3):
        _keep(tmp_path, n)
    assert [int(p.name[:2]) for p in store.prune_predictions(keep_recent=0).removed] == [2, 3]
    assert _kept(tmp_path) == {1}


def test_a_promote_prunes_what_it_no_longer_needs(tmp_path: Path) -> None:
    history = tmp_path / "history"
    store = Store(history)
    for n in (1, 2, 3):
        _gated(store, n, stage="qa")  # another stage: its last two stay needed
        _keep(history, n)
    _keep(history, 9)  # no verdict
    verdict = synthetic_verdict("PROMOTE")
    verdict["release"] = {**verdict["release"], "id": rid(10)}
    sealed = seal_verdict(verdict)
    outputs = Outputs(tmp_path / "verdict.json", tmp_path / "report.html", history, keep_predictions=0)
    lines = publish(sealed, outputs, {}, Predictions.encode(rid(10), DIGEST, "classification", [1, 0], (0, 1)))
    assert _kept(history) == {2, 3, 10}
    assert any(line.startswith("history: deleted 2 holdout predictions files") and "kept those of 3 releases" in line
               for line in lines), lines
    blocked = seal_verdict({**verdict, "decision": "BLOCK", "release": {**verdict["release"], "id": rid(11)}})
    _keep(history, 12)
    lines = publish(blocked, outputs, {}, Predictions.encode(rid(11), DIGEST, "classification", [1, 0], (0, 1)))
    assert 12 in _kept(history) and 11 not in _kept(history)
    assert not [x for x in lines if x.startswith("history:")], "a BLOCK keeps and prunes nothing"


def test_history_prune_command(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    where = ["--store", str(store.root)]
    assert cli.main(["history", "--prune", "--keep-predictions", "3", *where]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith("deleted ")] == [
        f"deleted {store.root / 'predictions'}/{rid(n)[7:]}--{DIGEST[7:23]}.npz" for n in (1, 3, 9)]
    assert out[-1].startswith(f"pruned {store.root / 'predictions'}: deleted 3 files (")
    assert out[-1].endswith("kept the predictions of 6 releases (those a gate may still compare with, and the last 3 "
                            "gated)")
    with pytest.raises(SystemExit) as refused:
        cli.main(["history", "--prune", "--keep-predictions", "-1", *where])
    assert refused.value.code == 2
    assert "argument --keep-predictions: -1 is below 0" in capsys.readouterr().err
