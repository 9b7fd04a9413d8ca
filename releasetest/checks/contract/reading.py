"""The published contract (swagger v2 and v3) read and checked against the manifest's features."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


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

