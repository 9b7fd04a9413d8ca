"""An MLflow model's input signature, read from its MLmodel file without importing mlflow.

The signature is the MLflow release's published contract: which columns the model takes and of
what type. The gate reads it to name a signature that refuses the holdout (a column typed
``long``, inferred from an integer example, against fractional values) and to give the schema
suite its columns when the no-code endpoint publishes no swagger. MLmodel is YAML whose
``signature.inputs`` is a JSON string (MLflow's column-based or tensor-based schema).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from releasetest.release.manifest import Release

#: MLflow column types that hold whole numbers only (``mlflow.types.DataType``).
INTEGER_TYPES = ("integer", "long")
#: MLflow column types the gate sends numbers to.
NUMBER_TYPES = ("double", "float", *INTEGER_TYPES)


@dataclass(frozen=True)
class Column:
    """One column of a column-based signature."""

    name: str | None
    type: str
    required: bool = True


def read_signature(model_dir: Path) -> list[Column] | None:
    """The column-based input signature of the MLflow model in ``model_dir`` (the folder holding
    MLmodel), or None when it has no MLmodel, no signature, or a tensor-based one."""
    mlmodel = model_dir / "MLmodel"
    if not mlmodel.is_file():
        return None
    try:
        doc = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))
        inputs = json.loads(((doc or {}).get("signature") or {}).get("inputs") or "null")
    except (yaml.YAMLError, ValueError, AttributeError):
        return None
    if not isinstance(inputs, list) or not all(isinstance(c, dict) and "type" in c for c in inputs):
        return None
    if any(c["type"] == "tensor" for c in inputs):
        return None
    return [Column(c.get("name"), str(c["type"]), bool(c.get("required", True))) for c in inputs]


def signature_refusal(columns: Sequence[Column], features: Sequence[str],
                      rows: Sequence[Sequence[float]], mlmodel: Path) -> str | None:
    """Why the signature refuses the holdout's ``rows`` (one line: the column, what it is typed,
    the value it refuses, and the fix), or None when it takes them."""
    by_name = {c.name: c for c in columns if c.name is not None}
    missing = [f for f in features if by_name and f not in by_name]
    if missing:
        return (f"the MLflow signature in {mlmodel} has no column {missing[0]!r} (it names "
                f"{', '.join(repr(n) for n in by_name)}); fix: save the model with a signature inferred from the "
                "training frame whose columns are the manifest's [data] features")
    typed = [by_name.get(f) if by_name else (columns[i] if i < len(columns) else None)
             for i, f in enumerate(features)]
    for i, column in enumerate(typed):
        if column is None or column.type not in INTEGER_TYPES:
            continue
        fraction = next((float(r[i]) for r in rows if i < len(r) and float(r[i]) != int(float(r[i]))), None)
        if fraction is not None:
            name = column.name or features[i]
            return (f"the MLflow signature in {mlmodel} types column {name!r} as {column.type} (as inferred from "
                    f"an integer example), and the holdout's {name} = {fraction:g} is fractional: MLflow refuses to "
                    f"convert it; fix: infer the signature from float data (e.g. "
                    f"infer_signature(X.astype('float64'), ...)) and save the model again, or type {name!r} as "
                    "double in MLmodel's signature")
    return None


def release_signature(release: Release) -> tuple[Path, list[Column]] | None:
    """The MLmodel file and column signature of a v2 release's local MLflow model folder, or None."""
    v2 = release.v2
    if v2 is None or v2.model.type != "mlflow_model" or v2.model.path is None or not v2.model.is_folder:
        return None
    columns = read_signature(v2.model.path)
    return (v2.model.path / "MLmodel", columns) if columns else None


def golden_refusal(release: Release, rows: Sequence[Sequence[float]]) -> str | None:
    """Why the release's MLflow signature refuses the golden ``rows`` (see :func:`signature_refusal`),
    or None, also for a release without one: the golden check's diagnosis on every target."""
    found = release_signature(release)
    if found is None or release.data is None:
        return None
    return signature_refusal(found[1], release.data.features, rows, found[0])


def feature_types(columns: Sequence[Column], features: Sequence[str]) -> tuple[str, ...]:
    """The signature's type of each manifest feature (by name, else by position; ``double`` if unnamed)."""
    by_name = {c.name: c.type for c in columns if c.name is not None}
    return tuple(by_name.get(f, "double") if by_name else (columns[i].type if i < len(columns) else "double")
                 for i, f in enumerate(features))
