"""The catalogue of negative inputs: requests a client should not send, built around one valid row."""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from releasetest.checks.contract.curl import curl_line, dumps


class RepeatedRows:
    """``{"data": [row, row, ...]}`` produced as it is sent, with its length known up front.

    requests sends it with a declared ``Content-Length``, so a server with a body cap answers 413
    from the headers alone; the body is never built in memory, and sending stops when the server
    answers and closes (urllib3 then reads the answer).
    """

    def __init__(self, row: Sequence[float], copies: int, chunk_rows: int = 2048):
        self.item, self.copies, self.chunk_rows = dumps(list(row)), copies, chunk_rows

    def __len__(self) -> int:
        return len(b'{"data":[]}') + self.copies * (len(self.item) + 1) - 1

    def __iter__(self) -> Iterator[bytes]:
        yield b'{"data":['
        left = self.copies
        while left:
            n = min(left, self.chunk_rows)
            left -= n
            yield b",".join([self.item] * n) + (b"," if left else b"]}")

    def shown(self) -> str:
        return f'{{"data":[{self.item.decode()},...]}} ({self.copies} rows, {len(self)} bytes)'


@dataclass(frozen=True)
class Probe:
    """One request a client should not send (or may send, for ``tolerate``)."""

    name: str
    what: str
    method: str = "POST"
    body: bytes | RepeatedRows | None = None
    content_type: str | None = "application/json"
    #: ``reject``: a client error, must not be scored; ``tolerate``: 2xx (valid answer) or 4xx both fine.
    expect: str = "reject"
    #: Send without the endpoint key (checks auth is enforced).
    unauthenticated: bool = False
    #: Shell command that prints the body, for bodies too large to inline in a curl line.
    body_command: str | None = None

    @property
    def rows(self) -> int | None:
        """Rows in a well-formed body (for checking a 2xx answer), None otherwise."""
        if isinstance(self.body, RepeatedRows):
            return self.body.copies
        try:
            data = json.loads(self.body or b"").get("data")
        except (ValueError, AttributeError):
            return None
        return len(data) if isinstance(data, list) else None

    def curl(self, url: str, key_env: str | None) -> str:
        inline = self.body if self.body_command is None and not isinstance(self.body, RepeatedRows) else None
        return curl_line(self.method, url, inline, self.content_type,
                         None if self.unauthenticated else key_env, self.body_command)

    def shown_body(self) -> str:
        if isinstance(self.body, RepeatedRows):
            return self.body.shown()
        text = (self.body or b"").decode("utf-8", errors="replace")
        return text if len(text) <= 300 else f"{text[:200]}... ({len(text)} bytes)"


#: Probe names, fixed at collection time so each becomes its own test id.
PROBE_NAMES = (
    "too-few-features", "too-many-features", "empty-row", "ragged-rows", "flat-row", "string-value",
    "numeric-string", "boolean-value", "null-data", "null-value", "nan-value", "infinity-value",
    "huge-number", "empty-batch", "missing-data-key", "extra-key", "deeply-nested", "body-is-a-list",
    "non-json-body", "wrong-content-type", "no-content-type", "get-instead-of-post", "oversized-body",
    "no-key",
)


#: Nesting depth of the deeply-nested probe: beyond the JSON decoder's recursion limit.
NESTING_DEPTH = 5000


def _printer(code: str) -> str:
    """A shell command that prints a body too large to inline."""
    return "python3 -c " + shlex.quote(code)


def _with(row: Sequence[float], i: int, value: Any) -> list[Any]:
    out: list[Any] = list(row)
    out[i] = value
    return out


def negative_probes(example_row: Sequence[float], oversized_kib: int = 10241) -> dict[str, Probe]:
    """Every probe in :data:`PROBE_NAMES`, built around one valid row (the published example)."""
    row = [float(v) for v in example_row]
    n = len(row)
    nested = "[" * NESTING_DEPTH + "1" + "]" * NESTING_DEPTH
    copies = max(1, oversized_kib * 1024 // (len(dumps(row)) + 1))
    big = RepeatedRows(row, copies)
    probes = [
        Probe("too-few-features", f"a row of {n - 1} values instead of {n}", body=dumps({"data": [row[:-1]]})),
        Probe("too-many-features", f"a row of {n + 1} values instead of {n}", body=dumps({"data": [row + [0.0]]})),
        Probe("empty-row", "a row with no values", body=dumps({"data": [[]]})),
        Probe("ragged-rows", "rows of different lengths", body=dumps({"data": [row, row[:2]]})),
        Probe("flat-row", "one row not wrapped in a batch", body=dumps({"data": row})),
        Probe("string-value", "a word where a number belongs", body=dumps({"data": [_with(row, 0, "warm")]})),
        Probe("numeric-string", "a number written as a string", body=dumps({"data": [_with(row, 0, str(row[0]))]})),
        Probe("boolean-value", "true where a number belongs", body=dumps({"data": [_with(row, 0, True)]})),
        Probe("null-data", "data is null", body=dumps({"data": None})),
        Probe("null-value", "null where a number belongs", body=dumps({"data": [_with(row, 0, None)]})),
        Probe("nan-value", "NaN where a number belongs", body=dumps({"data": [_with(row, 0, math.nan)]})),
        Probe("infinity-value", "Infinity where a number belongs", body=dumps({"data": [_with(row, 0, math.inf)]})),
        Probe("huge-number", "1e308, a valid number far outside the training range",
              body=dumps({"data": [_with(row, 0, 1e308)]}), expect="tolerate"),
        Probe("empty-batch", "an empty batch", body=dumps({"data": []})),
        Probe("missing-data-key", "a body without 'data'", body=dumps({})),
        Probe("extra-key", "a valid body with an undeclared key (the schema does not forbid it)",
              body=dumps({"data": [row], "debug": True}), expect="tolerate"),
        Probe("deeply-nested", f"arrays nested {NESTING_DEPTH} deep", body=('{"data":' + nested + "}").encode(),
              body_command=_printer(f'd = {NESTING_DEPTH}; print("{{\\"data\\":" + "[" * d + "1" + "]" * d + "}}")')),
        Probe("body-is-a-list", "a JSON list instead of an object", body=dumps([row])),
        Probe("non-json-body", "a body that is not JSON", body=b'{"data": [[1,'),
        Probe("wrong-content-type", "a JSON body sent as text/plain", body=dumps({"data": [row]}),
              content_type="text/plain"),
        Probe("no-content-type", "a JSON body without Content-Type", body=dumps({"data": [row]}), content_type=None),
        Probe("get-instead-of-post", "GET /score instead of POST", method="GET", body=None, content_type=None),
        Probe("oversized-body", f"{len(big) // 1024} KiB of valid rows ({copies} rows) in one request",
              body=big, expect="tolerate",
              body_command=_printer(f'import json; print(json.dumps({{"data": [{row!r}] * {copies}}}, '
                                    'separators=(",", ":")))')),
        Probe("no-key", "a valid request without the endpoint key", body=dumps({"data": [row]}), unauthenticated=True),
    ]
    by_name = {p.name: p for p in probes}
    assert tuple(by_name) == PROBE_NAMES
    return by_name

