"""Approvals signed with their own key, and a history that marks records no configured key signed.

The verdict is the shared reference run's PROMOTE, copied and re-sealed with a gate key made here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from releasetest.cli import main
from releasetest.promotion import PromotionRefused, verify_for_promotion
from releasetest.verdict import signing
from releasetest.verdict.history import Store
from releasetest.verdict.seal import seal_verdict

from .conftest import ReferenceRun


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A gate key and an approval key (private and .pub); no key variable set yet."""
    for name in (signing.ENV_SIGNING_KEY, signing.ENV_VERIFY_KEY, signing.ENV_HMAC_SECRET, signing.ENV_APPROVAL_KEY,
                 signing.ENV_APPROVAL_VERIFY_KEY):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)
    made = {}
    for name in ("gate", "approval"):
        signing.keygen(tmp_path / "keys" / name)
        made[name] = tmp_path / "keys" / name
    return made


@pytest.fixture
def signed_verdict(reference_run: ReferenceRun, keys: dict[str, Path], tmp_path: Path) -> Path:
    verdict = {k: v for k, v in reference_run.verdict().items() if k not in signing.UNSIGNED_FIELDS}
    assert verdict["decision"] == "PROMOTE"
    key = signing.private_key(keys["gate"].read_bytes(), "gate")
    path = tmp_path / "verdict.json"
    path.write_text(json.dumps(seal_verdict(verdict, key)))
    return path


def _verify(path: Path, store: Store) -> list[str]:
    return verify_for_promotion(json.loads(path.read_text()), str(path), "devtest", "production", None, store)[1]


def test_approval_signed_with_the_gate_key_is_refused_under_an_approval_key(
        signed_verdict: Path, keys: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(tmp_path / "history")
    monkeypatch.setenv(f"{signing.ENV_SIGNING_KEY}_FILE", str(keys["gate"]))
    assert main(["approve", str(signed_verdict), "--by", "mallory", "--store", str(store.root)]) == 0
    assert _verify(signed_verdict, store) == ["mallory"], "without an approval key the gate's key signs approvals"

    monkeypatch.setenv(f"{signing.ENV_APPROVAL_VERIFY_KEY}_FILE", f"{keys['approval']}.pub")
    with pytest.raises(PromotionRefused, match=r"requires an approval of this verdict; none recorded .* is valid: "
                                               r"approval by mallory .*signed with another key"):
        _verify(signed_verdict, store)

    monkeypatch.setenv(f"{signing.ENV_APPROVAL_KEY}_FILE", str(keys["gate"]))
    capsys.readouterr()
    assert main(["approve", str(signed_verdict), "--by", "eve", "--store", str(store.root)]) == 2
    assert "this is the gate's own key; approvals need a key of their own" in capsys.readouterr().err

    monkeypatch.setenv(f"{signing.ENV_APPROVAL_KEY}_FILE", str(keys["approval"]))
    assert main(["approve", str(signed_verdict), "--by", "alice", "--store", str(store.root)]) == 0
    assert _verify(signed_verdict, store) == ["alice"]


def test_history_marks_unsigned_and_badly_signed_records(signed_verdict: Path, keys: dict[str, Path], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(tmp_path / "history")
    verdict = json.loads(signed_verdict.read_text())
    monkeypatch.setenv(f"{signing.ENV_SIGNING_KEY}_FILE", str(keys["gate"]))
    store.add_verdict(verdict)
    monkeypatch.delenv(f"{signing.ENV_SIGNING_KEY}_FILE")
    forged = {"verdict_digest": verdict["digest"], "release_id": verdict["release"]["id"], "stage": "devtest",
              "promote_to": "production", "by": "mallory", "note": None, "at": "2026-12-01T00:00:01+00:00"}
    (store.root / "approvals").mkdir()
    (store.root / "approvals" / "forged.json").write_text(json.dumps(forged))
    store.record_promotion({"release": "port-weather", "release_id": verdict["release"]["id"], "from": "devtest",
                            "to": "production", "target": "url", "endpoint": {}, "verdict_digest": verdict["digest"],
                            "approved_by": ["mallory"], "by": "mallory", "at": "2026-12-01T00:00:02+00:00"})
    tampered = dict(forged, by="bob", at="2026-12-01T00:00:03+00:00",
                    signature=signing.private_key(keys["gate"].read_bytes(), "gate").sign(forged))
    (store.root / "approvals" / "tampered.json").write_text(json.dumps(tampered))

    assert main(["history", "--store", str(store.root)]) == 0
    unmarked = capsys.readouterr().out
    assert "[" not in unmarked, "with no key configured nothing can be told apart"

    monkeypatch.setenv(f"{signing.ENV_VERIFY_KEY}_FILE", f"{keys['gate']}.pub")
    assert main(["history", "--store", str(store.root)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]  # the events
    [gated] = [line for line in lines if " gated " in line]
    [approved] = [line for line in lines if "by mallory" in line and " approved " in line]
    [promoted] = [line for line in lines if " promoted " in line]
    [bob] = [line for line in lines if "by bob" in line]
    assert "[" not in gated
    assert "[UNSIGNED: not signed by the configured key]" in approved and "[UNSIGNED" in promoted
    assert "[BAD SIGNATURE: not signed by the configured key]" in bob
