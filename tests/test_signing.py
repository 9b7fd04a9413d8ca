"""Signed verdicts and approvals: a forged, edited or foreign-signed record is refused in one line."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from releasetest import cli
from releasetest.verdict import signing
from releasetest.verdict.history import Store
from releasetest.verdict.seal import seal_verdict, verdict_digest

from .synthetic import synthetic_verdict

HMAC_SECRET = "hmac-secret-for-tests-0123456789abcdef"


def _pem() -> str:
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _public_pem(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _write(tmp_path: Path, verdict: dict[str, Any]) -> Path:
    path = tmp_path / "verdict.json"
    path.write_text(json.dumps(verdict))
    return path


def _edited(v: dict[str, Any]) -> dict[str, Any]:
    return dict(v, decision="PROMOTE", reasons=["looks fine"])


def _redigested(v: dict[str, Any]) -> dict[str, Any]:
    forged = _edited(v)
    forged["digest"] = verdict_digest(forged)
    return forged


FORGERIES = {
    "edited": (lambda v, other: _edited(v), "verdict digest mismatch"),
    "re-digested": (lambda v, other: _redigested(v), "bad signature"),
    "other key": (lambda v, other: seal_verdict(_edited(v), other), "signed with another key"),
    "unsigned": (lambda v, other: {k: x for k, x in _redigested(v).items() if k != "signature"},
                 "unsigned, but a verification key"),
}


@pytest.fixture(params=["ed25519", "hmac"])
def keys(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> tuple[signing.Key, signing.Key]:
    """The CI's key (configured for verification in the environment) and a stranger's key."""
    for name in (signing.ENV_SIGNING_KEY, signing.ENV_VERIFY_KEY, signing.ENV_HMAC_SECRET):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)
    if request.param == "hmac":
        ci, other = signing.hmac_key(HMAC_SECRET.encode()), signing.hmac_key(b"another-secret-0123456789")
        return ci, other
    pem = _pem()
    return signing.private_key(pem.encode(), "test"), signing.private_key(_pem().encode(), "other")


def _configure_verification(key: signing.Key, monkeypatch: pytest.MonkeyPatch) -> None:
    if key.secret is not None:
        monkeypatch.setenv(signing.ENV_HMAC_SECRET, key.secret.decode())
    else:
        assert key.public is not None
        pub = key.public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        monkeypatch.setenv(signing.ENV_VERIFY_KEY, pub.decode())


def test_signed_verdict_is_accepted(keys: tuple[signing.Key, signing.Key], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    ci, _ = keys
    verdict = seal_verdict(synthetic_verdict("PROMOTE"), ci)
    assert verdict["signature"]["alg"] == ci.alg and verdict["signature"]["key_id"] == ci.key_id
    _configure_verification(ci, monkeypatch)
    assert cli.main(["verdict", str(_write(tmp_path, verdict))]) == 0
    assert "PROMOTE" in capsys.readouterr().out


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_forged_verdicts_are_refused(keys: tuple[signing.Key, signing.Key], forgery: str, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """An edited, a re-digested, a foreign-signed and an unsigned verdict: `verdict` and `promote`
    refuse each (exit 3) with one line naming why."""
    ci, other = keys
    make, reason = FORGERIES[forgery]
    genuine = seal_verdict(synthetic_verdict("BLOCK"), ci)
    path = _write(tmp_path, make(genuine, other))
    _configure_verification(ci, monkeypatch)
    for argv in (["verdict", str(path)],
                 ["promote", "--from", "devtest", "--to", "production", "--verdict", str(path), "--target", "url",
                  "--url", "http://127.0.0.1:9/score", "--store", str(tmp_path / "history")]):
        assert cli.main(argv) == 3, argv
        out, err = capsys.readouterr()
        assert out == ""
        assert err.startswith("releasetest: refused: ") and reason in err and err.count("\n") == 1, err
        for secret in (HMAC_SECRET, "PRIVATE KEY"):
            assert secret not in err


def test_without_a_key_the_digest_still_guards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (signing.ENV_SIGNING_KEY, signing.ENV_VERIFY_KEY, signing.ENV_HMAC_SECRET):
        monkeypatch.delenv(name, raising=False)
    verdict = seal_verdict(synthetic_verdict("PROMOTE"))
    assert "signature" not in verdict
    assert cli.main(["verdict", str(_write(tmp_path, verdict))]) == 0
    assert cli.main(["verdict", str(_write(tmp_path, _edited(dict(verdict, decision="BLOCK"))))]) == 3


def test_signing_key_from_file_signs_what_the_public_key_verifies(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pem = _pem()
    key_file = tmp_path / "signing.pem"
    key_file.write_text(pem)
    monkeypatch.setenv(signing.ENV_SIGNING_KEY + "_FILE", str(key_file))
    monkeypatch.delenv(signing.ENV_HMAC_SECRET, raising=False)
    verdict = seal_verdict(synthetic_verdict("PROMOTE"))  # the call sites' form: key from the environment
    monkeypatch.delenv(signing.ENV_SIGNING_KEY + "_FILE")
    monkeypatch.setenv(signing.ENV_VERIFY_KEY, _public_pem(pem))
    signing.verify(verdict, "v")


def test_unusable_key_costs_the_signature_not_the_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(signing.ENV_HMAC_SECRET, raising=False)
    monkeypatch.setenv(signing.ENV_SIGNING_KEY, "-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----\n")
    verdict = seal_verdict(synthetic_verdict("PROMOTE"))
    assert "signature" not in verdict and verdict["digest"]
    warning = verdict["warnings"][-1]
    assert warning.startswith("verdict not signed: RELEASETEST_SIGNING_KEY: not an unencrypted PEM private key")
    assert "not-a-key" not in json.dumps(verdict)


def test_approvals_are_signed_and_checked(keys: tuple[signing.Key, signing.Key], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ci, _ = keys
    if ci.secret is not None:
        monkeypatch.setenv(signing.ENV_HMAC_SECRET, ci.secret.decode())
    else:
        assert ci.private is not None
        monkeypatch.setenv(signing.ENV_SIGNING_KEY, ci.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode())
    store = Store(tmp_path / "history")
    record = store.approve(seal_verdict(synthetic_verdict("PROMOTE")), "alice")
    assert record["signature"]["key_id"] == ci.key_id
    (saved,) = store.approvals()
    signing.verify(saved, "approval")
    with pytest.raises(signing.SealRefused, match="bad signature"):
        signing.verify(dict(saved, by="mallory"), "approval")


def test_keygen_prints_no_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ci" / "signing.pem"
    assert cli.main(["keygen", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = signing.private_key(out.read_bytes(), "k")
    assert signing.public_key(Path(f"{out}.pub").read_bytes(), "p").key_id == key.key_id
    assert key.key_id in printed
    for line in out.read_text().splitlines() + Path(f"{out}.pub").read_text().splitlines():
        if "-----" not in line:
            assert line not in printed
    assert cli.main(["keygen", "--out", str(out)]) == 2  # never overwrites a key


def _add_and_record(root: str, n: int, start: Any) -> None:
    start.wait()
    store = Store(Path(root))
    store.add_verdict(seal_verdict(dict(synthetic_verdict("PROMOTE"), stage=f"writer-{n}")))
    store.record_promotion({"release_id": "sha256:" + "ab" * 32, "verdict_digest": f"d{n}", "to": "production",
                            "at": "2026-01-01T00:00:00+00:00", "by": f"writer-{n}"})


def test_ten_concurrent_writers_lose_no_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten processes add a verdict and a promotion each (the promotions in the same second, for the
    same release) at once: all twenty records are there."""
    for name in (signing.ENV_SIGNING_KEY, signing.ENV_VERIFY_KEY, signing.ENV_HMAC_SECRET):
        monkeypatch.delenv(name, raising=False)
    # Forked from one server that imported this module once: ten spawned interpreters would each
    # import it again (~1 s of CPU apiece), and a plain fork of an xdist worker copies its threads.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    start = ctx.Barrier(10)
    procs = [ctx.Process(target=_add_and_record, args=(str(tmp_path), n, start)) for n in range(10)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    store = Store(tmp_path)
    assert sorted(v["stage"] for v in store.verdicts()) == sorted(f"writer-{n}" for n in range(10))
    assert sorted(p["by"] for p in store.promotions()) == sorted(f"writer-{n}" for n in range(10))
    assert not [f for f in os.listdir(tmp_path / "promotions") if f.endswith(".tmp")]
