"""The verdict's seal: a digest over its canonical JSON, added last, so an edit is detectable."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def verdict_digest(verdict: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of everything but the digest itself.

    Covers the decision, the reasons and the release id together, so editing any of them (say,
    BLOCK to PROMOTE) without recomputing the digest is caught by ``releasetest promote``. It
    detects edits, not a forger who recomputes it: that needs a signing key the CI holds.
    """
    content = {k: v for k, v in verdict.items() if k != "digest"}
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return "sha256:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()


def seal_verdict(verdict: dict[str, Any]) -> dict[str, Any]:
    """Normalise to plain JSON and add the ``digest`` field; call last, just before writing."""
    sealed: dict[str, Any] = json.loads(json.dumps({k: v for k, v in verdict.items() if k != "digest"},
                                                   default=str))
    sealed["digest"] = verdict_digest(sealed)
    return sealed

