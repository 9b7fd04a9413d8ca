"""``releasetest history``: each release's path through the stages, and ``releasetest rollback``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from releasetest import cli
from releasetest.errors import ReleaseTestError
from releasetest.files import now_iso
from releasetest.verdict.formatting import fmt
from releasetest.verdict.history import Store
from releasetest.verdict.seal import seal_verdict

from .synthetic import synthetic_verdict

ROLLBACK = 'az ml online-endpoint update --name port-weather-production --traffic "r-old=100 r-new=0"'


def _figures(verdict: dict[str, Any]) -> dict[str, float]:
    """The key figures the gated step shows, as the PROMOTE verdict's findings carry them."""
    acceptance, load = verdict["findings"]["acceptance"], verdict["findings"]["load"]
    return {"accuracy": acceptance["metrics"]["accuracy"], "p99": load["latency_ms"]["p99"],
            "req/s": load["achieved_rps"]}


FIGURES = _figures(synthetic_verdict("PROMOTE"))


def _verdict(decision: str, release_id: str, at: str, trigger: dict[str, str] | None = None) -> dict[str, Any]:
    v = synthetic_verdict(decision)
    v["release"] = {**v["release"], "id": release_id}
    v["finished_at"], v["trigger"] = at, trigger
    return seal_verdict(v)


def _promotion(verdict: dict[str, Any], at: str) -> dict[str, Any]:
    return {"release": "port-weather", "release_id": verdict["release"]["id"], "verdict_digest": verdict["digest"],
            "artifacts": [{"name": "model-scaler", "version": "1"}], "from": "devtest", "to": "production",
            "target": "azureml", "by": "ci", "at": at, "approved_by": ["approved through environment production"],
            "endpoint": {"endpoint": "port-weather-production", "traffic_before": {"r-old": 100},
                         "traffic": {"r-old": 0, "r-new": 100}, "rollback": ROLLBACK}}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """Two releases: one blocked; one gated from a push, approved, promoted to production and rolled back."""
    store = Store(tmp_path / "history")
    store.add_verdict(_verdict("BLOCK", "sha256:" + "aa" * 32, "2026-01-01T09:00:00+00:00"))
    passed = _verdict("PROMOTE", "sha256:" + "bb" * 32, "2026-01-01T10:00:00+00:00",
                      {"kind": "git", "branch": "develop", "commit": "0123456789abcdef", "run_url": "https://ci/run/7"})
    store.add_verdict(passed)
    store.approve(passed, "approved through environment production", note="https://ci/run/8")
    store.record_promotion(_promotion(passed, now_iso()))  # after the approval, which is stamped now
    return store


def test_releases_show_each_path_through_the_stages(store: Store) -> None:
    store.record_rollback("production", "bob", note="INC-7")
    blocked, shipped = store.releases()
    assert blocked["status"] == "gated devtest BLOCK" and [e["step"] for e in blocked["events"]] == ["gated"]
    assert shipped["release_id"] == "sha256:" + "bb" * 32 and shipped["status"] == "rolled back production"
    assert [(e["step"], e["stage"]) for e in shipped["events"]] == [
        ("gated", "devtest"), ("approved", "production"), ("promoted", "production"), ("rolled back", "production")]
    gated, approved, promoted, rolled = shipped["events"]
    assert gated["by"] == "git branch develop commit 0123456789ab" and gated["run_url"] == "https://ci/run/7"
    assert gated["where"] == "local http://127.0.0.1:5001/score"
    assert gated["figures"] == FIGURES
    assert (approved["by"], approved["note"]) == ("approved through environment production", "https://ci/run/8")
    assert (promoted["by"], promoted["where"]) == ("ci", "azureml port-weather-production")
    assert (rolled["by"], rolled["note"], rolled["command"]) == ("bob", "INC-7", ROLLBACK)


def test_rollback_needs_a_promotion_and_counts_once(store: Store) -> None:
    with pytest.raises(ReleaseTestError, match="no promotion to staging is recorded"):
        store.record_rollback("staging", "bob")
    record = store.record_rollback("production", "bob")
    assert record["traffic_restored"] == {"r-old": 100} and record["command"] == ROLLBACK
    with pytest.raises(ReleaseTestError, match="already recorded as rolled back by bob"):
        store.record_rollback("production", "carol")
    assert len(store.rollbacks()) == 1


def test_history_and_rollback_commands(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    where = ["--store", str(store.root)]
    assert cli.main(["rollback", "--stage", "production", "--by", "bob", *where]) == 0
    assert ROLLBACK in capsys.readouterr().out
    assert cli.main(["rollback", "--stage", "production", "--by", "bob", *where]) == 2
    assert "already recorded as rolled back" in capsys.readouterr().err
    assert cli.main(["history", *where]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("port-weather@aaaaaaaaaaaa") and out[0].endswith("now: gated devtest BLOCK")
    assert out[2].startswith("port-weather@bbbbbbbbbbbb") and out[2].endswith("now: rolled back production")
    shown = f"accuracy {fmt(FIGURES['accuracy'])}, p99 {fmt(FIGURES['p99'])} ms, req/s {fmt(FIGURES['req/s'])}"
    assert shown in out[3]
    assert "by approved through environment production  (https://ci/run/8)" in out[4]
    assert "rolled back production" in out[6] and ROLLBACK in out[6]
    assert cli.main(["history", "--json", "--last", "1", *where]) == 0
    (shipped,) = json.loads(capsys.readouterr().out)
    assert shipped["status"] == "rolled back production" and len(shipped["events"]) == 4
