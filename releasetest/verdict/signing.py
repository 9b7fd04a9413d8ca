"""Signatures on verdicts and approvals, with a key the CI holds, so a verdict cannot be forged.

The digest (:mod:`releasetest.verdict.seal`) catches an edit but anyone can recompute it. A
signature over the same canonical JSON needs a key: Ed25519 (the gate job holds the private key,
the promotion job only the public key) or HMAC-SHA256 (both hold one shared secret).

Keys come from the environment, by value or by file, and never appear in any output:

- ``RELEASETEST_SIGNING_KEY`` / ``RELEASETEST_SIGNING_KEY_FILE``: Ed25519 private key (PEM), signs.
- ``RELEASETEST_VERIFY_KEY`` / ``RELEASETEST_VERIFY_KEY_FILE``: Ed25519 public key (PEM), verifies.
- ``RELEASETEST_HMAC_SECRET`` / ``RELEASETEST_HMAC_SECRET_FILE``: shared secret, signs and verifies.
- ``RELEASETEST_APPROVAL_KEY`` / ``_FILE``: Ed25519 private key (PEM) the reviewers' ``approve`` signs
  with, distinct from the gate's; ``RELEASETEST_APPROVAL_VERIFY_KEY`` / ``_FILE``: its public key, for
  ``promote``. Without them approvals are signed and checked with the gate's key.

Whenever a verification key is configured (a public key, a secret, or a private key, whose public
half verifies), unsigned or badly signed records are refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from releasetest.errors import ReleaseTestError

ENV_SIGNING_KEY = "RELEASETEST_SIGNING_KEY"
ENV_VERIFY_KEY = "RELEASETEST_VERIFY_KEY"
ENV_HMAC_SECRET = "RELEASETEST_HMAC_SECRET"
ENV_APPROVAL_KEY = "RELEASETEST_APPROVAL_KEY"
ENV_APPROVAL_VERIFY_KEY = "RELEASETEST_APPROVAL_VERIFY_KEY"
#: Fields a signature or digest never covers: themselves.
UNSIGNED_FIELDS = ("digest", "signature")


class SealRefused(ReleaseTestError):
    """A record's seal does not hold: edited after the digest, unsigned under a configured key,
    signed with another key, or changed since it was signed."""


class KeyConfigError(ReleaseTestError):
    """A key variable or file is set but unusable. The message names the variable, never the key."""


def canonical(record: Mapping[str, Any], exclude: tuple[str, ...] = UNSIGNED_FIELDS) -> bytes:
    """The bytes that are digested and signed: sorted, compact JSON of all but ``exclude``."""
    content = {k: v for k, v in record.items() if k not in exclude}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), default=str,
                      ensure_ascii=False).encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _fingerprint(material: bytes) -> str:
    return hashlib.sha256(b"releasetest-key-id\0" + material).hexdigest()[:16]


def _public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class Key:
    """One signing or verification key. ``repr`` shows the algorithm and key id only."""

    alg: str  # "ed25519" or "hmac-sha256"
    key_id: str
    private: Ed25519PrivateKey | None = None
    public: Ed25519PublicKey | None = None
    secret: bytes | None = None

    def __repr__(self) -> str:
        return f"Key({self.alg}, id {self.key_id})"

    @property
    def can_sign(self) -> bool:
        return self.private is not None or self.secret is not None

    def sign(self, record: Mapping[str, Any]) -> dict[str, str]:
        """The ``signature`` field for ``record`` (over everything but digest and signature)."""
        blob = canonical(record)
        if self.secret is not None:
            value = hmac.new(self.secret, blob, hashlib.sha256).digest()
        elif self.private is not None:
            value = self.private.sign(blob)
        else:
            raise KeyConfigError(f"key {self.key_id} is a public key: it verifies, it cannot sign")
        return {"alg": self.alg, "key_id": self.key_id, "value": _b64(value)}

    def verify(self, record: Mapping[str, Any], where: str) -> None:
        """Refuse ``record`` unless it carries a valid signature by this key, in one line."""
        sig = record.get("signature")
        if not isinstance(sig, Mapping) or not sig.get("value"):
            raise SealRefused(f"{where}: unsigned, but a verification key ({self.alg}, id {self.key_id}) is "
                                   "configured: only records signed by that key are accepted")
        if sig.get("alg") != self.alg or sig.get("key_id") != self.key_id:
            raise SealRefused(f"{where}: signed with another key ({sig.get('alg')}, id {sig.get('key_id')}), "
                                   f"not the configured {self.alg} key id {self.key_id}")
        try:
            value = base64.b64decode(str(sig["value"]), validate=True)
        except ValueError:
            raise SealRefused(f"{where}: the signature is not valid base64") from None
        blob = canonical(record)
        if self.secret is not None:
            ok = hmac.compare_digest(value, hmac.new(self.secret, blob, hashlib.sha256).digest())
        else:
            assert self.public is not None
            try:
                self.public.verify(value, blob)
                ok = True
            except InvalidSignature:
                ok = False
        if not ok:
            raise SealRefused(f"{where}: bad signature (key id {self.key_id}): the content changed after "
                                   "it was signed; re-run the gate instead of editing its output")


def hmac_key(secret: bytes) -> Key:
    if len(secret) < 16:
        raise KeyConfigError(f"{ENV_HMAC_SECRET}: the secret is shorter than 16 bytes; use at least 32 random bytes")
    return Key("hmac-sha256", _fingerprint(secret), secret=secret)


def private_key(pem: bytes, source: str) -> Key:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise KeyConfigError(f"{source}: not an unencrypted PEM private key (make one with: releasetest keygen)") \
            from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyConfigError(f"{source}: not an Ed25519 key (make one with: releasetest keygen)")
    public = key.public_key()
    return Key("ed25519", _fingerprint(_public_raw(public)), private=key, public=public)


def public_key(pem: bytes, source: str) -> Key:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise KeyConfigError(f"{source}: not a PEM public key (the .pub file releasetest keygen writes)") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyConfigError(f"{source}: not an Ed25519 public key")
    return Key("ed25519", _fingerprint(_public_raw(key)), public=key)


def _material(environ: Mapping[str, str], name: str) -> tuple[bytes, str] | None:
    """The value of ``NAME``, else of the file ``NAME_FILE``; with where it came from."""
    if environ.get(name):
        return environ[name].encode("utf-8"), name
    path = environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_bytes(), f"{name}_FILE ({path})"
        except OSError as exc:
            raise KeyConfigError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
    return None


def signing_key(environ: Mapping[str, str] | None = None) -> Key | None:
    """The key the gate signs with, from the environment; None when signing is not set up."""
    env = os.environ if environ is None else environ
    found = _material(env, ENV_HMAC_SECRET)
    if found:
        return hmac_key(found[0].strip())
    found = _material(env, ENV_SIGNING_KEY)
    return private_key(found[0], found[1]) if found else None


def verification_key(environ: Mapping[str, str] | None = None) -> Key | None:
    """The key records must be signed with, from the environment; None when none is configured."""
    env = os.environ if environ is None else environ
    found = _material(env, ENV_VERIFY_KEY)
    if found:
        return public_key(found[0], found[1])
    return signing_key(env)


def approval_signing_key(environ: Mapping[str, str] | None = None) -> Key | None:
    """The key approvals are signed with: ``RELEASETEST_APPROVAL_KEY``, else the gate's. The approval
    key must not be the gate's own: whoever holds the gate's key could then approve too."""
    env = os.environ if environ is None else environ
    found = _material(env, ENV_APPROVAL_KEY)
    if not found:
        return signing_key(env)
    key = private_key(found[0], found[1])
    gate = verification_key(env)
    if gate is not None and gate.key_id == key.key_id:
        raise KeyConfigError(f"{found[1]}: this is the gate's own key; approvals need a key of their own "
                             "(make one with: releasetest keygen)")
    return key


def approval_verification_key(environ: Mapping[str, str] | None = None) -> Key | None:
    """The key approvals must be signed with: ``RELEASETEST_APPROVAL_VERIFY_KEY``, else the public half
    of ``RELEASETEST_APPROVAL_KEY``, else the gate's verification key."""
    env = os.environ if environ is None else environ
    found = _material(env, ENV_APPROVAL_VERIFY_KEY)
    if found:
        return public_key(found[0], found[1])
    return approval_signing_key(env) if _material(env, ENV_APPROVAL_KEY) else verification_key(env)


def seal_problem(record: Mapping[str, Any], key: Key | None) -> str | None:
    """How ``record`` fails ``key`` in a word or two (``unsigned``, ``signed with another key``,
    ``bad signature``); None when it verifies or no key is configured."""
    if key is None:
        return None
    sig = record.get("signature")
    if not isinstance(sig, Mapping) or not sig.get("value"):
        return "unsigned"
    if sig.get("alg") != key.alg or sig.get("key_id") != key.key_id:
        return "signed with another key"
    try:
        key.verify(record, "record")
    except SealRefused:
        return "bad signature"
    return None


def verify(record: Mapping[str, Any], where: str, environ: Mapping[str, str] | None = None) -> Key | None:
    """Refuse ``record`` unless it is signed by the configured key; no key configured, no check."""
    key = verification_key(environ)
    if key is not None:
        key.verify(record, where)
    return key


def keygen(out: Path) -> Key:
    """Write a new Ed25519 pair: ``out`` (private, mode 0600) and ``out.pub``; the key itself is never printed."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    pub = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    Path(f"{out}.pub").write_bytes(pub)
    return private_key(pem, str(out))
