"""The one place a release's request and answer formats live.

A :class:`Wire` turns holdout rows into the request body the release's entry script reads
(``rows``, ``records``, ``input_data`` or a ``named`` input dict) and an answer back into
predictions and probabilities. It is declared in the manifest's ``[data]`` (``input``,
``input_key``, ``output``) or, with ``input = "auto"``, read from the ServiceInput the endpoint
publishes; a raw ``run()`` that publishes none gets rows under ``data``. The scoring client,
the golden check, the load generator's bodies, the schema suite's generated inputs and probes
and the smoke tests all encode and decode through it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from releasetest.endpoint.handle import EndpointHandle
from releasetest.errors import EndpointError
from releasetest.release.manifest import Release

#: The request formats a release can declare (``[data] input``); ``auto`` reads the swagger.
INPUTS = ("auto", "rows", "records", "input_data", "named")
#: Keys a mapping answer may hold its predictions under when the manifest names none.
PREDICTION_KEYS = ("predictions", "labels", "label", "result")
#: What a too-many-features item calls its extra column in a records body.
EXTRA_COLUMN = "extra_column"


def _get(doc: Any, path: Sequence[str]) -> Any:
    for part in path:
        doc = doc.get(part) if isinstance(doc, Mapping) else None
    return doc


@dataclass(frozen=True)
class Wire:
    """How rows go into a request and predictions come out of the answer, for one release."""

    #: ``rows``: ``{key: [[v, ...]]}``; ``records``: ``{key: [{feature: v}]}``; ``input_data``:
    #: ``{"input_data": {"columns", "index", "data"}}``; ``named``: rows at ``key`` inside a dict.
    input: str = "rows"
    features: tuple[str, ...] = ()
    #: Where the rows go: one key, or a dotted path into a named-input dict (``Inputs.data``).
    key: str = "data"
    #: The other inputs of a named-input dict, as the published example gives them.
    others: dict[str, Any] = field(default_factory=dict)
    #: Answer keys; None: a bare list, or the first of :data:`PREDICTION_KEYS` present.
    predictions: str | None = None
    probabilities: str = "probabilities"
    #: Most rows one request may carry (``[acceptance] batch_size``); None: no limit.
    batch_size: int | None = None

    @property
    def path(self) -> tuple[str, ...]:
        return ("input_data",) if self.input == "input_data" else tuple(self.key.split("."))

    def item(self, cells: Sequence[Any]) -> Any:
        """One row as the body carries it: a list, or a record keyed by feature (extra cells get
        :data:`EXTRA_COLUMN` names, missing ones are left out)."""
        if self.input != "records":
            return list(cells)
        names = list(self.features) + [f"{EXTRA_COLUMN}_{i}" for i in range(1, 1 + len(cells) - len(self.features))]
        return dict(zip(names, cells, strict=False))

    def wrap(self, payload: Any) -> dict[str, Any]:
        """A body with ``payload`` where the rows go (for probes: anything, even not a list)."""
        if self.input == "input_data":
            n = len(payload) if isinstance(payload, list) else 0
            return {"input_data": {"columns": list(self.features), "index": list(range(n)), "data": payload}}
        body: dict[str, Any] = json.loads(json.dumps(self.others)) if self.input == "named" else {}
        *outer, last = self.path
        at = body
        for part in outer:
            at = at.setdefault(part, {})
        at[last] = payload
        return body

    def body(self, rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
        """The request body for ``rows`` (numbers are sent as floats)."""
        return self.wrap([self.item([float(v) for v in r]) for r in rows])

    def rows_in(self, body: Any) -> list[list[Any]] | None:
        """The rows a body of this format carries, in feature order (None when it carries none)."""
        items = _get(body, (*self.path, "data") if self.input == "input_data" else self.path)
        if not isinstance(items, list) or not items:
            return None
        if self.input == "records":
            if not all(isinstance(r, Mapping) for r in items):
                return None
            return [[r.get(f) for f in self.features] for r in items]
        return items if all(isinstance(r, list) for r in items) else None

    def decode(self, answer: Any) -> tuple[list[Any], list[list[float]] | None]:
        """Predictions (and probabilities if present) from what ``run()`` returned.

        azmlinfsrv JSON-encodes the return value; a ``run()`` that returned ``json.dumps(...)``
        arrives as a JSON string holding JSON, which is decoded once more.
        """
        if isinstance(answer, str):
            try:
                answer = json.loads(answer)
            except ValueError:
                raise EndpointError(f"run() returned a string that is not JSON: {answer[:200]!r}") from None
        if isinstance(answer, list) and self.predictions is None:
            return answer, None
        if not isinstance(answer, dict):
            expected = f"a mapping with '{self.predictions}'" if self.predictions else \
                "a list or a mapping with 'predictions'"
            raise EndpointError(f"response is {type(answer).__name__}, expected {expected}")
        keys = (self.predictions,) if self.predictions else PREDICTION_KEYS
        key = next((k for k in keys if k in answer), None)
        if key is None:
            raise EndpointError(f"response has no '{keys[0]}' key: keys are {sorted(answer)[:10]}"
                                + ("" if self.predictions else
                                   "; name the key with [data] output = { predictions = \"...\" }"))
        preds = answer[key]
        if not isinstance(preds, list):
            raise EndpointError(f"'{key}' in the response is {type(preds).__name__}, expected a list")
        probs = answer.get(self.probabilities)
        if probs is not None and not isinstance(probs, list):
            raise EndpointError(f"'{self.probabilities}' in the response is not a list")
        return preds, probs

    def describe(self) -> str:
        where = "input_data" if self.input == "input_data" else self.key
        return f"{self.input} under '{where}'" + (f", {self.batch_size} row(s) per request" if self.batch_size else "")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Wire:
        return cls(**{**data, "features": tuple(data.get("features", ()))})


@dataclass(frozen=True)
class WireSpec:
    """What the manifest declares; :meth:`resolve` fills ``auto`` from the published ServiceInput."""

    input: str = "auto"
    features: tuple[str, ...] = ()
    key: str | None = None
    predictions: str | None = None
    probabilities: str = "probabilities"
    batch_size: int | None = None

    def resolve(self, service_input: Mapping[str, Any] | None) -> Wire:
        """The wire for this release; ``service_input`` is swagger v2's ServiceInput, or None."""
        kind, key = self.input, self.key
        example = service_input.get("example") if isinstance(service_input, Mapping) else None
        if kind == "auto":
            kind, key = detect(service_input, key)
        key = key or "data"
        others: dict[str, Any] = {}
        if kind == "named" and isinstance(example, Mapping):
            others = json.loads(json.dumps(example))
        return Wire(input=kind, features=self.features, key=key, others=others, predictions=self.predictions,
                    probabilities=self.probabilities, batch_size=self.batch_size)


def _rows_kind(schema: Any) -> str | None:
    """``rows`` or ``records`` for an array schema of arrays or of objects, else None."""
    if not isinstance(schema, Mapping) or schema.get("type") != "array":
        return None
    items = schema.get("items")
    kind = items.get("type") if isinstance(items, Mapping) else None
    return {"array": "rows", "object": "records"}.get(kind or "")


def detect(service_input: Mapping[str, Any] | None, key: str | None = None) -> tuple[str, str | None]:
    """(input format, rows key) the published ServiceInput describes; rows under ``data`` without one."""
    props = service_input.get("properties") if isinstance(service_input, Mapping) else None
    if not isinstance(props, Mapping) or not props:
        return "rows", key
    if "input_data" in props and len(props) == 1:
        return "input_data", None
    if key:
        *outer, last = key.split(".")
        at: Any = service_input
        for part in outer:
            at = _get(at, ("properties", part))
        kind = _rows_kind(_get(at, ("properties", last)))
        return (("named" if outer else kind) or "rows"), key
    direct = [(name, _rows_kind(schema)) for name, schema in props.items() if _rows_kind(schema)]
    if len(direct) == 1 and len(props) == 1:
        return direct[0][1] or "rows", direct[0][0]
    nested = [(f"{name}.{inner}", _rows_kind(s)) for name, schema in props.items() if isinstance(schema, Mapping)
              for inner, s in (schema.get("properties") or {}).items() if _rows_kind(s)]
    found = direct + nested
    if len(found) == 1:
        return "named", found[0][0]
    return "rows", "data" if "data" in props else None


def _cell_types(service_input: Mapping[str, Any], wire: Wire) -> list[Any]:
    """The published type of each row cell (one for every cell of a row array, one per feature
    for records), or [] when the ServiceInput does not describe rows at the wire's place."""
    at: Any = service_input
    for part in wire.path + (("data",) if wire.input == "input_data" else ()):
        at = _get(at, ("properties", part))
    row = _get(at, ("items",)) if _get(at, ("type",)) == "array" else None
    if wire.input == "records":
        columns = _get(row, ("properties",))
        return [_get(columns, (f, "type")) for f in wire.features] if isinstance(columns, Mapping) else []
    return [_get(row, ("items", "type"))] if _get(row, ("type",)) == "array" else []


def integer_schema_cause(service_input: Mapping[str, Any] | None, wire: Wire,
                         rows: Sequence[Sequence[float]]) -> str | None:
    """Why answers differ when the published input schema types cells as integer while ``rows``
    hold fractions: inference-schema casts each request to its sample's dtype, so 0.76 arrives as
    0 (an integer sample such as ``numpy.array([[1, 2, ...]])`` is common in published samples).
    None when the schema is not integer-typed or the rows are whole numbers."""
    if not isinstance(service_input, Mapping):
        return None
    types = _cell_types(service_input, wire)
    if not types or "integer" not in types:
        return None
    names = list(wire.features) or [f"column {i + 1}" for i in range(max(map(len, rows), default=0))]
    fractional = [(names[i] if i < len(names) else f"column {i + 1}", v) for r in rows for i, v in enumerate(r)
                  if (types[0] if len(types) == 1 else types[i] if i < len(types) else None) == "integer"
                  and float(v) != int(float(v))]
    if not fractional:
        return None
    where = "input_data.data" if wire.input == "input_data" else wire.key
    column, value = fractional[0]
    return (f"the published input schema types '{where}' as integer (the inference-schema sample has an "
            f"integer dtype) while the holdout has fractional values (e.g. {column} = {float(value):g}): "
            f"inference-schema casts every request to the sample's dtype, so {float(value):g} arrives as "
            f"{int(float(value))}; fix: give the @input_schema sample float values (e.g. "
            f"numpy.array([[1.0, ...]]) or dtype=numpy.float64)")


def wire_of(handle: EndpointHandle) -> Wire:
    """The wire the endpoint resolved when it became ready (rows under ``data`` if it recorded none)."""
    return Wire.from_dict(handle.info.get("wire") or {})


def wire_spec(release: Release) -> WireSpec:
    """The manifest's declared formats, and ``[acceptance] batch_size`` when set (it caps every request)."""
    data = release.data
    if data is None:
        return WireSpec()
    batch = release.suite_tables.get("acceptance", {}).get("batch_size")
    return WireSpec(input=data.input, features=data.features, key=data.input_key,
                    predictions=data.output_predictions, probabilities=data.output_probabilities,
                    batch_size=batch if isinstance(batch, int) else None)
