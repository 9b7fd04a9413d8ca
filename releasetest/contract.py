"""The endpoint's published contract, the inputs that probe it, and how answers are judged.

Pure module (no pytest) used by ``suites/suite_schema.py``: reads the ``ServiceInput`` /
``ServiceOutput`` schemas azmlinfsrv generates from inference-schema decorators, checks them
against the manifest, learns realistic feature ranges from the holdout for generated valid
inputs, holds the catalogue of negative inputs, classifies each answer under the release's
policy (``strict`` or ``azure``), detects leaked tracebacks and file paths, and renders a
ready-to-run ``curl`` line for every finding.
"""

from __future__ import annotations

import builtins
import json
import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import jsonschema
import numpy as np
from hypothesis import strategies as st

from .errors import ConfigError
from .spec import Release, Stage

POLICIES = ("strict", "azure")
#: A finding that warns (recorded, run still passes) or fails the test.
DEFECT, FAILURE = "defect", "failure"


# --------------------------------------------------------------------------- manifest [schema]

@dataclass(frozen=True)
class SchemaConfig:
    """The ``[schema]`` table of release.toml."""

    #: ``azure``: a 500 for bad input (what azmlinfsrv does when inference-schema or run() rejects
    #: it) is a contract defect that warns; ``strict``: client errors must be answered 4xx.
    policy: str = "azure"
    #: Generated valid requests per run (hypothesis ``max_examples``).
    max_examples: int = 40
    #: Largest batch a generated request carries.
    max_rows: int = 16
    #: None: derandomized (the same examples on every run); an int: a seeded random run.
    seed: int | None = None
    #: Size of the oversized-body probe, in KiB of valid rows.
    oversized_kib: int = 1024


_SCHEMA_KEYS = {
    "policy": "policy = \"azure\" or \"strict\"",
    "max_examples": "max_examples = 40",
    "max_rows": "max_rows = 16",
    "seed": "seed = 12345 (or remove it for the derandomized default)",
    "oversized_kib": "oversized_kib = 1024",
}


def parse_schema_config(table: dict[str, Any], release: Release, stage: Stage) -> SchemaConfig:
    """Parse ``[schema]``; bad values stop the run before deploy with file, key and fix."""
    for key in table:
        if key not in _SCHEMA_KEYS:
            raise ConfigError(release.manifest, f"schema.{key}", "unknown key",
                              "known keys: " + ", ".join(_SCHEMA_KEYS))
    policy = table.get("policy", SchemaConfig.policy)
    if policy not in POLICIES:
        raise ConfigError(release.manifest, "schema.policy", f"unknown policy {policy!r}",
                          _SCHEMA_KEYS["policy"])
    ints: dict[str, int | None] = {}
    for key, low in (("max_examples", 1), ("max_rows", 1), ("oversized_kib", 1), ("seed", 0)):
        value = table.get(key, getattr(SchemaConfig, key))
        if value is None:
            ints[key] = None
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(release.manifest, f"schema.{key}", f"expected an integer >= {low}, got {value!r}",
                              _SCHEMA_KEYS[key])
        ints[key] = value
    return SchemaConfig(policy=policy, **ints)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- findings and curl

class ContractDefectWarning(UserWarning):
    """A contract defect the release's policy tolerates: shown in the warnings summary, not failed."""


@dataclass(frozen=True)
class Finding:
    """One contract problem, as the verdict records it (``findings.schema.findings``)."""

    kind: str
    severity: str
    status: int | None
    body: str
    curl: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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


# --------------------------------------------------------------------------- leaks

_EXCEPTION_NAMES = sorted(
    name for name, obj in vars(builtins).items()
    if isinstance(obj, type) and issubclass(obj, BaseException) and name.endswith(("Error", "Exception"))
)
_LEAKS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Python traceback", re.compile(r"Traceback \(most recent call last\)")),
    ("stack frame", re.compile(r"File \"[^\"]+\", line \d+")),
    ("file path", re.compile(r"(?<![\w.:/])/(?:home|root|tmp|var|usr|opt|srv|app|mnt|etc|azureml-app|structure)"
                             r"(?:/[\w.@+-]+)+")),
    ("file path", re.compile(r"\b[A-Za-z]:\\(?:[\w.@+ -]+\\)+")),
    ("Python source file", re.compile(r"[\w/\\.-]+\.py\b")),
    ("exception text", re.compile(r"\b(?:" + "|".join(_EXCEPTION_NAMES) + r"): ")),
)


def find_leak(text: str) -> str | None:
    """What internal detail a response shows (traceback, frame, path, exception), quoted; None if clean."""
    for what, pattern in _LEAKS:
        match = pattern.search(text)
        if match:
            return f"{what} {match.group(0)[:80]!r}"
    return None


# --------------------------------------------------------------------------- published contract

class ContractError(Exception):
    """The endpoint publishes no usable contract, or one that contradicts the manifest."""


@dataclass(frozen=True)
class Contract:
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    example: dict[str, Any]
    n_features: int
    findings: tuple[tuple[str, str], ...]
    """(kind, message) gaps in the published schema itself: recorded as defects, never failures."""


def _schemas(doc: Mapping[str, Any], version: int) -> tuple[dict[str, Any], dict[str, Any]]:
    defs = doc.get("definitions") if version == 2 else (doc.get("components") or {}).get("schemas")
    if not isinstance(defs, dict) or "ServiceInput" not in defs or "ServiceOutput" not in defs:
        raise ContractError(f"swagger.json version {version} has no ServiceInput/ServiceOutput definitions: "
                            "decorate run() with inference-schema's @input_schema and @output_schema")
    return defs["ServiceInput"], defs["ServiceOutput"]


def _without_example(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_example(v) for k, v in schema.items() if k != "example"}
    return schema


def read_contract(v2: Mapping[str, Any], v3: Mapping[str, Any], features: Sequence[str]) -> Contract:
    """Check the published contract (swagger v2 and v3) against the manifest's feature list.

    Raises :class:`ContractError` when it is missing, when v2 and v3 disagree, or when its input
    does not take rows of ``len(features)`` numbers.
    """
    in2, out2 = _schemas(v2, 2)
    in3, out3 = _schemas(v3, 3)
    if _without_example(in2) != _without_example(in3) or _without_example(out2) != _without_example(out3):
        raise ContractError("swagger.json version 2 and version 3 publish different ServiceInput/ServiceOutput")
    data = (in2.get("properties") or {}).get("data")
    if not isinstance(data, dict):
        raise ContractError("the published ServiceInput has no 'data' property: the suite needs "
                            "@input_schema('data', NumpyParameterType(...)) (or a 'data' list)")
    row = data.get("items") if data.get("type") == "array" else None
    row = row if isinstance(row, dict) else {}
    cell = row.get("items") if row.get("type") == "array" else None
    if not isinstance(cell, dict):
        raise ContractError(f"the published 'data' is {json.dumps(data)[:200]}, not an array of rows "
                            "(array of arrays)")
    if cell.get("type") not in ("number", "integer"):
        raise ContractError(f"the published 'data' cells are of type {cell.get('type')!r}; the manifest's features "
                            "are numbers")
    example = in2.get("example")
    rows = example.get("data") if isinstance(example, dict) else None
    if (not isinstance(example, dict) or not isinstance(rows, list) or not rows
            or not all(isinstance(r, list) for r in rows)):
        raise ContractError("the published ServiceInput has no example rows: pass a sample array to "
                            "NumpyParameterType so clients (and this suite) see the row shape")
    widths = sorted({len(r) for r in rows})
    if widths != [len(features)]:
        raise ContractError(f"the published example rows have {'/'.join(map(str, widths))} values, the manifest's "
                            f"[data] features name {len(features)} ({', '.join(features)})")
    gaps: list[tuple[str, str]] = []
    n = len(features)
    if row.get("minItems") != n or row.get("maxItems") != n:
        gaps.append(("schema-feature-count-unpinned",
                     f"the published input schema does not pin rows to {n} features (no minItems/maxItems); "
                     f"clients cannot know a row needs exactly {n} numbers"))
    if "data" not in (in2.get("required") or []):
        gaps.append(("schema-data-not-required",
                     "the published input schema does not mark 'data' as required, so a client cannot "
                     "tell that a body without it is refused"))
    return Contract(input_schema=in2, output_schema=out2, example=example, n_features=n, findings=tuple(gaps))


def declares_bearer(v2: Mapping[str, Any]) -> bool:
    """Whether the spec says POST /score needs ``Authorization: Bearer``."""
    op = ((v2.get("paths") or {}).get("/score") or {}).get("post") or {}
    return any("Bearer" in req for req in op.get("security") or v2.get("security") or [])


# --------------------------------------------------------------------------- valid inputs

@dataclass(frozen=True)
class FeatureRange:
    name: str
    low: float
    high: float
    integral: bool

    def edges(self) -> list[float]:
        """Edge values a client can legitimately send: the extremes seen, and zero when in range."""
        values = [self.low, self.high]
        if self.low < 0.0 < self.high:
            values.append(0.0)
        return list(dict.fromkeys(values))


def learn_ranges(features: Sequence[str], rows: np.ndarray) -> list[FeatureRange]:
    """Min/max per feature from the holdout, and whether it only ever holds whole numbers."""
    return [FeatureRange(name, float(rows[:, i].min()), float(rows[:, i].max()),
                         bool(np.all(rows[:, i] == np.round(rows[:, i]))))
            for i, name in enumerate(features)]


def _feature_values(r: FeatureRange) -> st.SearchStrategy[float]:
    edges = st.sampled_from(r.edges())
    if r.integral:
        inner = st.integers(math.ceil(r.low), math.floor(r.high)).map(float)
    else:
        inner = st.floats(r.low, r.high, allow_nan=False, allow_infinity=False)
    return st.one_of(edges, inner)


def rows_strategy(ranges: Sequence[FeatureRange], max_rows: int) -> st.SearchStrategy[list[list[float]]]:
    """Batches of 1..max_rows rows whose values lie in the ranges the model was shown."""
    row = st.tuples(*(_feature_values(r) for r in ranges)).map(list)
    return st.lists(row, min_size=1, max_size=max_rows)


def output_violation(body: Any, output_schema: Mapping[str, Any], n_rows: int,
                     classes: Sequence[Any]) -> str | None:
    """Why an answer to ``n_rows`` valid rows breaks the contract, or None when it keeps it."""
    try:
        jsonschema.validate(body, output_schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(map(str, exc.absolute_path)) or "top level"
        return f"response {json.dumps(body)[:120]} does not match the published output schema: {exc.message} at {where}"
    preds = body.get("predictions") if isinstance(body, dict) else body
    if not isinstance(preds, list):
        return f"response {json.dumps(body)[:120]} carries no list of predictions"
    if len(preds) != n_rows:
        return f"sent {n_rows} rows, got {len(preds)} predictions"
    unknown = sorted({repr(p) for p in preds if p not in classes})
    if unknown:
        return f"labels {', '.join(unknown)} are not among the release's classes {list(classes)}"
    probs = body.get("probabilities") if isinstance(body, dict) else None
    if probs is not None:
        if len(probs) != n_rows:
            return f"sent {n_rows} rows, got {len(probs)} probability rows"
        for i, p in enumerate(probs):
            if len(p) != len(classes) or not all(isinstance(v, (int, float)) and 0.0 <= v <= 1.0 for v in p):
                return f"row {i}: probabilities {p} are not {len(classes)} values in [0, 1]"
    return None


# --------------------------------------------------------------------------- negative inputs

@dataclass(frozen=True)
class Probe:
    """One request a client should not send (or may send, for ``tolerate``)."""

    name: str
    what: str
    method: str = "POST"
    body: bytes | None = None
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
        try:
            data = json.loads(self.body or b"").get("data")
        except (ValueError, AttributeError):
            return None
        return len(data) if isinstance(data, list) else None

    def curl(self, url: str, key_env: str | None) -> str:
        return curl_line(self.method, url, self.body if self.body_command is None else None, self.content_type,
                         None if self.unauthenticated else key_env, self.body_command)

    def shown_body(self) -> str:
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


def negative_probes(example_row: Sequence[float], oversized_kib: int = 1024) -> dict[str, Probe]:
    """Every probe in :data:`PROBE_NAMES`, built around one valid row (the published example)."""
    row = [float(v) for v in example_row]
    n = len(row)
    nested = "[" * NESTING_DEPTH + "1" + "]" * NESTING_DEPTH
    copies = max(1, oversized_kib * 1024 // (len(dumps(row)) + 1))
    big = dumps({"data": [row] * copies})
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


def classify(probe: Probe, status: int, text: str, policy: str, *, has_key: bool,
             output_schema: Mapping[str, Any] | None = None, classes: Sequence[Any] = ()) -> tuple[str, str] | None:
    """(severity, message) for an answer to ``probe`` under ``policy``, or None when it is fine.

    A leak is checked separately (a failure under every policy). ``azure`` excuses exactly what
    azmlinfsrv does for input it cannot score: a 500, and bad values scored with a 200.
    """
    lenient = DEFECT if policy == "azure" else FAILURE
    if probe.unauthenticated:
        if status in (401, 403):
            return None
        if not has_key:
            return (DEFECT, f"the spec declares Bearer auth but the endpoint answered {status} without a key "
                            "(no key is configured for this stage)")
        return (FAILURE, f"the endpoint has a key but answered {status} to a request without it: auth not enforced")
    if 400 <= status < 500:
        return None
    if status >= 500:
        severity = lenient if status == 500 else FAILURE
        return (severity, f"{probe.what}: answered {status} (a client error should be 4xx): {text[:120]}")
    if 200 <= status < 300:
        problem = _answer_problem(probe, text, output_schema, classes)
        if probe.expect == "tolerate":
            return None if problem is None else (FAILURE, f"{probe.what}: answered {status} but {problem}")
        return (lenient, f"{probe.what}: scored with status {status} instead of refused: {text[:120]}")
    return (FAILURE, f"{probe.what}: answered {status}: {text[:120]}")


def _answer_problem(probe: Probe, text: str, output_schema: Mapping[str, Any] | None,
                    classes: Sequence[Any]) -> str | None:
    if output_schema is None or probe.rows is None:
        return None
    try:
        body = json.loads(text)
    except ValueError:
        return f"the answer is not JSON: {text[:120]!r}"
    return output_violation(body, output_schema, probe.rows, classes)
