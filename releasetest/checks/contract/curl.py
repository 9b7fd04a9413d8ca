"""Request bodies as the server reads them, and ``curl`` lines that send the same request again."""

from __future__ import annotations

import json
import shlex
from typing import Any

#: Bodies longer than this are not inlined in a curl line; a generator command is used instead.
MAX_INLINE_BODY = 4096


def curl_line(method: str, url: str, body: bytes | None = None, content_type: str | None = "application/json",
              key_env: str | None = None, body_command: str | None = None) -> str:
    """A shell line that sends the same request. The key is referenced by its variable, never written."""
    parts = ["curl", "-sS", "-i", "-X", method, shlex.quote(url)]
    if content_type is not None:
        parts += ["-H", shlex.quote(f"Content-Type: {content_type}")]
    if key_env:
        parts += ["-H", f'"Authorization: Bearer ${key_env}"']
    if body_command is not None:
        return f"{body_command} | " + " ".join(parts + ["--data-binary", "@-"])
    if body is not None:
        text = body.decode("utf-8", errors="replace")
        if len(text) > MAX_INLINE_BODY:
            raise ValueError("body too long to inline; pass body_command")
        parts += ["--data-binary", shlex.quote(text)]
    return " ".join(parts)


def dumps(body: Any) -> bytes:
    """JSON as Python's json (and azmlinfsrv) reads it: NaN and Infinity are written as such."""
    return json.dumps(body, allow_nan=True, separators=(",", ":")).encode()

