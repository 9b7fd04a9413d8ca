"""The catalogue of negative inputs: requests a client should not send, built around one valid row."""

from __future__ import annotations

import math
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from releasetest.checks.contract.curl import curl_line, dumps
from releasetest.endpoint.formats import Wire


class RepeatedRows:
    """A body of ``copies`` copies of one row, in the release's format, produced as it is sent,
    with its length known up front.

    requests sends it with a declared ``Content-Length``, so a server with a body cap answers 413
    from the headers alone; the body is never built in memory, and sending stops when the server
    answers and closes (urllib3 then reads the answer).
    """

    def __init__(self, row: Sequence[float], copies: int, chunk_rows: int = 2048, wire: Wire | None = None):
        wire = wire or Wire()
        self.item, self.copies, self.chunk_rows = dumps(wire.item(list(row))), copies, chunk_rows
        # The body around the rows: the format's wrapping with a marker where the list goes.
        head, tail = dumps(wire.wrap(_MARK)).split(dumps(_MARK))
        self.head, self.tail = head + b"[", b"]" + tail

    def __len__(self) -> int:
        return len(self.head) + len(self.tail) + self.copies * (len(self.item) + 1) - 1

    def __iter__(self) -> Iterator[bytes]:
        yield self.head
        left = self.copies
        while left:
            n = min(left, self.chunk_rows)
            left -= n
            yield b",".join([self.item] * n) + (b"," if left else self.tail)

    def shown(self) -> str:
        return (f"{self.head.decode()}{self.item.decode()},...{self.tail.decode()} "
                f"({self.copies} rows, {len(self)} bytes)")


#: Stands for the rows while a format's wrapping is written out.
_MARK = "__rows__"


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
    #: Rows in a well-formed body (for checking a 2xx answer), None otherwise.
    rows: int | None = None

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
    "no-key", "reordered-columns", "missing-signature-column", "fraction-in-integer-column",
)

#: Probes that mean something only for some input formats; the others skip them, saying why.
ONLY_FOR = {"reordered-columns": ("records",)}
#: Probes of what an MLflow signature promises (a column it requires, an integer type), built only
#: when the contract is a signature (``column_types``).
SIGNATURE_PROBES = ("missing-signature-column", "fraction-in-integer-column")


#: Nesting depth of the deeply-nested probe: beyond the JSON decoder's recursion limit.
NESTING_DEPTH = 5000


def _printer(code: str) -> str:
    """A shell command that prints a body too large to inline."""
    return "python3 -c " + shlex.quote(code)


def _with(item: Any, i: int, value: Any) -> Any:
    """A row item (list, or record) with its ``i``-th value replaced."""
    if isinstance(item, dict):
        return {k: (value if j == i else v) for j, (k, v) in enumerate(item.items())}
    out: list[Any] = list(item)
    out[i] = value
    return out


def negative_probes(example_row: Sequence[float], oversized_kib: int = 10241,
                    wire: Wire | None = None, column_types: Sequence[str] | None = None) -> dict[str, Probe]:
    """Every probe in :data:`PROBE_NAMES`, built around one valid row (the published example) and
    written in the release's input format: for records, a missing column, an extra column and a
    wrong type are a record without a feature, with an undeclared one, and with a word in one field."""
    wire = wire or Wire()
    row = [float(v) for v in example_row]
    n = len(row)
    item = wire.item(row)
    body = wire.body([row])
    records = wire.input == "records"

    def batch(*items: Any) -> bytes:
        return dumps(wire.wrap(list(items)))

    nested = "[" * NESTING_DEPTH + "1" + "]" * NESTING_DEPTH
    copies = max(1, oversized_kib * 1024 // (len(dumps(item)) + 1))
    big = RepeatedRows(row, copies, wire=wire)
    few = ("a record without the column " + wire.features[-1]) if records and wire.features else \
        f"a row of {n - 1} values instead of {n}"
    many = "a record with an undeclared extra column" if records else f"a row of {n + 1} values instead of {n}"
    first = f"the field {wire.features[0]}" if records and wire.features else "a number"
    nested_body = dumps(wire.wrap("__nested__")).replace(b'"__nested__"', nested.encode())
    mark_head, mark_tail = dumps(wire.wrap("__nested__")).decode().split('"__nested__"')
    shown_code = f'd = {NESTING_DEPTH}; print({mark_head!r} + "[" * d + "1" + "]" * d + {mark_tail!r})'
    probes = [
        Probe("too-few-features", few, body=batch(wire.item(row[:-1]))),
        Probe("too-many-features", many, body=batch(wire.item(row + [0.0]))),
        Probe("empty-row", "a row with no values", body=batch(wire.item([]))),
        Probe("ragged-rows", "rows of different lengths", body=batch(item, wire.item(row[:2]))),
        Probe("flat-row", "one row not wrapped in a batch", body=dumps(wire.wrap(item))),
        Probe("string-value", f"a word where {first} belongs", body=batch(_with(item, 0, "warm"))),
        Probe("numeric-string", "a number written as a string", body=batch(_with(item, 0, str(row[0])))),
        Probe("boolean-value", f"true where {first} belongs", body=batch(_with(item, 0, True))),
        Probe("null-data", "the rows are null", body=dumps(wire.wrap(None))),
        Probe("null-value", f"null where {first} belongs", body=batch(_with(item, 0, None))),
        Probe("nan-value", f"NaN where {first} belongs", body=batch(_with(item, 0, math.nan))),
        Probe("infinity-value", f"Infinity where {first} belongs", body=batch(_with(item, 0, math.inf))),
        Probe("huge-number", "1e308, a valid number far outside the training range",
              body=batch(_with(item, 0, 1e308)), expect="tolerate", rows=1),
        Probe("empty-batch", "an empty batch", body=batch()),
        Probe("missing-data-key", f"a body without '{wire.path[0]}'", body=dumps({})),
        Probe("extra-key", "a valid body with an undeclared key (the schema does not forbid it)",
              body=dumps({**body, "debug": True}), expect="tolerate", rows=1),
        Probe("deeply-nested", f"arrays nested {NESTING_DEPTH} deep", body=nested_body,
              body_command=_printer(shown_code)),
        Probe("body-is-a-list", "a JSON list instead of an object", body=dumps([item])),
        Probe("non-json-body", "a body that is not JSON", body=dumps(body)[:-5]),
        Probe("wrong-content-type", "a JSON body sent as text/plain", body=dumps(body), content_type="text/plain"),
        Probe("no-content-type", "a JSON body without Content-Type", body=dumps(body), content_type=None),
        Probe("get-instead-of-post", "GET /score instead of POST", method="GET", body=None, content_type=None),
        Probe("oversized-body", f"{len(big) // 1024} KiB of valid rows ({copies} rows) in one request",
              body=big, expect="tolerate", rows=copies,
              body_command=_printer(f'import json; print({big.head.decode()!r} + ",".join([{dumps(item).decode()!r}] '
                                    f'* {copies}) + {big.tail.decode()!r})')),
        Probe("no-key", "a valid request without the endpoint key", body=dumps(body), unauthenticated=True),
        Probe("reordered-columns", "a valid record with its columns in another order",
              body=batch(dict(reversed(list(item.items()))) if isinstance(item, dict) else item),
              expect="tolerate", rows=1),
    ]
    probes += _signature_probes(row, wire, column_types)
    by_name = {p.name: p for p in probes}
    assert tuple(n for n in PROBE_NAMES if n in by_name) == tuple(by_name)
    return by_name


def _signature_probes(row: list[float], wire: Wire, column_types: Sequence[str] | None) -> list[Probe]:
    """A body without a column the signature requires (columns and values agree, so only the
    signature refuses it), and a fraction in a column it types as integer."""
    if column_types is None or wire.input != "input_data" or not wire.features:
        return []
    features = list(wire.features)
    probes = [Probe("missing-signature-column", f"a table without the signature's column {features[-1]}",
                    body=dumps({"input_data": {"columns": features[:-1], "index": [0], "data": [row[:-1]]}}))]
    integer = [i for i, t in enumerate(column_types) if t in ("integer", "long")]
    if integer:
        i = integer[0]
        probes.append(Probe("fraction-in-integer-column",
                            f"{row[i] + 0.5:g} in {features[i]}, which the signature types {column_types[i]}",
                            body=dumps(wire.wrap([_with(row, i, row[i] + 0.5)]))))
    return probes
