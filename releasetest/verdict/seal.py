"""The verdict's seal: a digest over its canonical JSON and, when the CI holds a key, a signature.

The digest catches an edit (say, BLOCK to PROMOTE) but anyone can recompute it; the signature
(:mod:`releasetest.verdict.signing`) needs the key the CI holds, so it catches a forger too.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from releasetest.verdict.signing import Key, KeyConfigError, canonical, signing_key


def verdict_digest(verdict: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of everything but the digest and the signature."""
    return "sha256:" + hashlib.sha256(canonical(verdict)).hexdigest()


def seal_verdict(verdict: dict[str, Any], key: Key | None = None) -> dict[str, Any]:
    """Normalise to plain JSON, add the ``digest`` and, with a signing key (``key``, else the one the
    environment configures), the ``signature``; call last, just before writing.

    A key that is configured but unusable costs the signature, not the verdict: the verdict is
    written unsigned with a warning naming the variable, and verification refuses it later.
    """
    sealed: dict[str, Any] = json.loads(json.dumps(
        {k: v for k, v in verdict.items() if k not in ("digest", "signature")}, default=str))
    if key is None:
        try:
            key = signing_key()
        except KeyConfigError as exc:
            sealed["warnings"] = [*sealed.get("warnings", []), f"verdict not signed: {exc}"]
    sealed["digest"] = verdict_digest(sealed)
    if key is not None and key.can_sign:
        sealed["signature"] = key.sign(sealed)
    return sealed
