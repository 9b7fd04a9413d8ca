"""The published contract (swagger v2 and v3) read in the release's input format and checked against
the manifest's features; a raw ``run()`` that publishes none gets its contract from the manifest."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from releasetest.endpoint.formats import Wire


class ContractError(Exception):
    """The endpoint publishes no usable contract, or one that contradicts the manifest."""


class NoContract(ContractError):
    """The endpoint publishes no ServiceInput/ServiceOutput at all: a raw ``run()`` without schema."""


@dataclass(frozen=True)
class Contract:
    input_schema: dict[str, Any]
    #: None when the contract comes from the manifest (the endpoint publishes none).
    output_schema: dict[str, Any] | None
    #: Example rows in the manifest's feature order, read from the published example (or the holdout).
    example_rows: list[list[Any]]
    n_features: int
    findings: tuple[tuple[str, str], ...]
    """(kind, message) gaps in the published schema itself: recorded as defects, never failures."""
    #: Whether the endpoint published it; tests that need a published schema skip when it did not.
    published: bool = True
    #: An MLflow model's signature type of each feature (``double``, ``long``...), when the contract is its signature.
    column_types: tuple[str, ...] | None = None

    def integer_columns(self) -> list[bool] | None:
        """Which features take whole numbers only, by the signature; None: judge by the holdout."""
        return None if self.column_types is None else [t in ("integer", "long") for t in self.column_types]


def _schemas(doc: Mapping[str, Any], version: int) -> tuple[dict[str, Any], dict[str, Any]]:
    defs = doc.get("definitions") if version == 2 else (doc.get("components") or {}).get("schemas")
    if not isinstance(defs, dict) or ("ServiceInput" not in defs and "ServiceOutput" not in defs):
        raise NoContract(f"swagger.json version {version} has no ServiceInput/ServiceOutput definitions: "
                         "decorate run() with inference-schema's @input_schema and @output_schema")
    if "ServiceInput" not in defs or "ServiceOutput" not in defs:
        missing = "ServiceInput" if "ServiceInput" not in defs else "ServiceOutput"
        raise ContractError(f"swagger.json version {version} has no {missing}: decorate run() with both "
                            "inference-schema's @input_schema and @output_schema")
    if not defs["ServiceInput"].get("properties") and not defs["ServiceInput"].get("example"):
        # azmlinfsrv's placeholder for an undecorated run(): {"type": "object", "example": {}}.
        raise NoContract(f"swagger.json version {version} publishes an empty ServiceInput: run() has no "
                         "inference-schema decorators")
    return defs["ServiceInput"], defs["ServiceOutput"]


def _without_example(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_example(v) for k, v in schema.items() if k != "example"}
    return schema


def _rows_schema(service_input: Mapping[str, Any], wire: Wire) -> Any:
    at: Any = service_input
    for part in wire.path:
        at = ((at or {}).get("properties") or {}).get(part) if isinstance(at, Mapping) else None
    if wire.input == "input_data":
        at = ((at or {}).get("properties") or {}).get("data") if isinstance(at, Mapping) else None
    return at


def manifest_contract(wire: Wire, example_row: Sequence[float]) -> Contract:
    """The contract a raw ``run()`` cannot publish: the manifest's features, one holdout row as example."""
    return Contract(input_schema={}, output_schema=None, example_rows=[list(example_row)],
                    n_features=len(wire.features), findings=(), published=False)


_JSON_TYPES = {"double": "number", "float": "number", "long": "integer", "integer": "integer",
               "boolean": "boolean", "string": "string"}


def signature_contract(wire: Wire, types: Sequence[str], example_row: Sequence[float]) -> Contract:
    """The contract of an MLflow model served without code: its signature's columns and types (the
    no-code endpoint publishes no swagger), as ``input_data`` rows, one holdout row as example."""
    cells = [{"type": _JSON_TYPES.get(t, "number")} for t in types]
    rows = {"type": "array", "items": {"type": "array", "items": cells, "minItems": len(cells),
                                       "maxItems": len(cells)}}
    schema = {"type": "object", "required": ["input_data"], "properties": {"input_data": {
        "type": "object", "properties": {"columns": {"type": "array", "items": {"type": "string"},
                                                     "example": list(wire.features)}, "data": rows}}}}
    return Contract(input_schema=schema, output_schema=None, example_rows=[list(example_row)],
                    n_features=len(types), findings=(), published=False, column_types=tuple(types))


def read_contract(v2: Mapping[str, Any], v3: Mapping[str, Any], wire: Wire) -> Contract:
    """Check the published contract (swagger v2 and v3) against the manifest's features, in the
    release's own input format (``wire``).

    Raises :class:`NoContract` when nothing is published, :class:`ContractError` when v2 and v3
    disagree or when its input does not take rows of the manifest's features.
    """
    features = wire.features
    in2, out2 = _schemas(v2, 2)
    in3, out3 = _schemas(v3, 3)
    if _without_example(in2) != _without_example(in3) or _without_example(out2) != _without_example(out3):
        raise ContractError("swagger.json version 2 and version 3 publish different ServiceInput/ServiceOutput")
    where = "input_data.data" if wire.input == "input_data" else wire.key
    data = _rows_schema(in2, wire)
    if not isinstance(data, dict):
        raise ContractError(f"the published ServiceInput has no '{where}' property ({wire.input} format): set "
                            "[data] input and input_key to what run() takes, or publish it with @input_schema")
    row = data.get("items") if data.get("type") == "array" else None
    row = row if isinstance(row, dict) else {}
    n = len(features)
    gaps: list[tuple[str, str]] = []
    if wire.input == "records":
        columns = row.get("properties") if row.get("type") == "object" else None
        if not isinstance(columns, dict):
            raise ContractError(f"the published '{where}' is {json.dumps(data)[:200]}, not a list of records "
                                "(array of objects)")
        missing = [f for f in features if f not in columns]
        extra = [c for c in columns if c not in features]
        if missing or extra:
            parts = ([f"missing: {', '.join(missing)}"] if missing else []) + \
                ([f"not in the manifest: {', '.join(extra)}"] if extra else [])
            raise ContractError(f"the published records have columns {list(columns)}; the manifest's [data] "
                                f"features are {list(features)} ({'; '.join(parts)})")
        cells = [columns[f] for f in features]
        if set(row.get("required") or []) != set(features):
            gaps.append(("schema-columns-not-required",
                         "the published records do not mark every feature as required, so a client cannot "
                         "tell that a record without one is refused"))
    else:
        cell = row.get("items") if row.get("type") == "array" else None
        if not isinstance(cell, dict):
            raise ContractError(f"the published '{where}' is {json.dumps(data)[:200]}, not an array of rows "
                                "(array of arrays)")
        cells = [cell]
        if row.get("minItems") != n or row.get("maxItems") != n:
            gaps.append(("schema-feature-count-unpinned",
                         f"the published input schema does not pin rows to {n} features (no minItems/maxItems); "
                         f"clients cannot know a row needs exactly {n} numbers"))
    wrong = sorted({str(c.get("type")) for c in cells if c.get("type") not in ("number", "integer")})
    if wrong:
        raise ContractError(f"the published '{where}' cells are of type {', '.join(map(repr, wrong))}; the manifest's "
                            "features are numbers")
    rows = wire.rows_in(in2.get("example"))
    if not rows:
        raise ContractError(f"the published ServiceInput has no example rows under '{where}': pass a sample to "
                            "the parameter type so clients (and this suite) see the row shape")
    widths = sorted({len(r) for r in rows})
    if widths != [n] or any(v is None for r in rows for v in r):
        raise ContractError(f"the published example rows have {'/'.join(map(str, widths))} values, the manifest's "
                            f"[data] features name {n} ({', '.join(features)})")
    top = wire.path[0]
    if top not in (in2.get("required") or []):
        gaps.append(("schema-data-not-required",
                     f"the published input schema does not mark '{top}' as required, so a client cannot "
                     "tell that a body without it is refused"))
    return Contract(input_schema=in2, output_schema=out2, example_rows=rows, n_features=n, findings=tuple(gaps))


def declares_bearer(v2: Mapping[str, Any]) -> bool:
    """Whether the spec says POST /score needs ``Authorization: Bearer``."""
    op = ((v2.get("paths") or {}).get("/score") or {}).get("post") or {}
    return any("Bearer" in req for req in op.get("security") or v2.get("security") or [])

