"""The reference profile: what the training data looked like, written once at training time.

``releasetest profile data.csv --out reference.json`` writes it; the drift check reads it (or
the training CSV itself) as the reference production traffic and the holdout are compared with.
Per numerical feature it keeps a seeded random sample of at most ``sample`` values (the metrics
are computed on samples, as Azure ML's are) plus count, mean, standard deviation, extremes and
quantiles; per categorical feature the exact count of every category.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from releasetest.checks.drift.stats import FeatureSample, Kind, category_key, infer_kind
from releasetest.errors import ConfigError
from releasetest.files import sha256_file

#: Written in every profile; a reader refuses another.
FORMAT = "releasetest-profile/1"
QUANTILES = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)
DEFAULT_SAMPLE = 20000


def read_columns(path: Path, features: Sequence[str]) -> dict[str, np.ndarray]:
    """The named columns of a CSV as floats; a non-numeric cell is an error naming its line."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise ConfigError(path, None, "empty CSV file", "write a header row naming the features, then rows")
        missing = [c for c in features if c not in header]
        if missing:
            raise ConfigError(path, ", ".join(missing), "column(s) missing from the header",
                              "columns present: " + ", ".join(header))
        idx = [header.index(c) for c in features]
        rows = []
        for number, line in enumerate(reader, start=2):
            if not line:
                continue
            try:
                rows.append([float(line[i]) if line[i] != "" else math.nan for i in idx])
            except (ValueError, IndexError):
                raise ConfigError(path, f"line {number}", f"non-numeric or missing feature value in {line!r}",
                                  "clean the row or drop it from the file") from None
    data = np.array(rows, dtype=np.float64).reshape(len(rows), len(features))
    return {f: data[:, j] for j, f in enumerate(features)}


def profile(columns: Mapping[str, np.ndarray], *, categorical: Sequence[str] = (), numerical: Sequence[str] = (),
            sample: int = DEFAULT_SAMPLE, seed: int = 0, source: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The profile of ``columns`` (JSON-ready). Kinds are inferred unless named."""
    rng = np.random.default_rng(seed)
    features: dict[str, Any] = {}
    for name, raw in columns.items():
        values = np.asarray(raw, dtype=np.float64)
        finite = values[np.isfinite(values)]
        kind: Kind = ("categorical" if name in categorical else
                      "numerical" if name in numerical else infer_kind(finite))
        entry: dict[str, Any] = {"kind": kind, "count": int(len(finite)), "missing": int(len(values) - len(finite))}
        if kind == "numerical" and len(finite):
            kept = finite if len(finite) <= sample else finite[np.sort(rng.choice(len(finite), sample, replace=False))]
            entry.update(
                mean=float(finite.mean()), std=float(finite.std(ddof=1)) if len(finite) > 1 else 0.0,
                min=float(finite.min()), max=float(finite.max()),
                quantiles={str(q): float(v) for q, v in zip(QUANTILES, np.quantile(finite, QUANTILES), strict=True)},
                values=kept.tolist(),
            )
        elif kind == "categorical":
            keys, counts = np.unique(finite, return_counts=True)
            entry["counts"] = [[category_key(k), int(c)] for k, c in zip(keys, counts, strict=True)]
        features[name] = entry
    return {"format": FORMAT, "source": dict(source or {}), "sample": {"max_values": sample, "seed": seed},
            "features": features}


def profile_csv(path: Path, features: Sequence[str], **options: Any) -> dict[str, Any]:
    """The profile of a training CSV's ``features`` columns, naming the file and its digest."""
    columns = read_columns(path, features)
    rows = len(next(iter(columns.values()))) if columns else 0
    return profile(columns, source={"file": path.name, "sha256": sha256_file(path), "rows": rows}, **options)


def write_profile(doc: Mapping[str, Any], out: Path) -> None:
    """Compact JSON: a profile holds tens of thousands of values, one line each would be bulky."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, separators=(",", ":")) + "\n", encoding="utf-8")


def load_profile(path: Path, features: Sequence[str]) -> list[FeatureSample]:
    """The reference samples of a profile file, for the ``features`` the model takes."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(path, None, f"cannot read the profile ({exc})",
                          "write it with: releasetest profile TRAINING.csv --out reference.json") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else None
        raise ConfigError(path, "format", f"not a releasetest profile (format {found!r})",
                          f"write it with: releasetest profile TRAINING.csv --out {path.name}")
    return _samples(doc.get("features") or {}, features, path)


def _samples(table: Mapping[str, Any], features: Sequence[str], path: Path) -> list[FeatureSample]:
    missing = [f for f in features if f not in table]
    if missing:
        raise ConfigError(path, "features", f"no profile for {', '.join(missing)}",
                          "profile the training data again with every feature the model takes")
    out = []
    for name in features:
        entry = table[name]
        if entry.get("kind") == "categorical":
            out.append(FeatureSample(name, "categorical",
                                     counts={category_key(k): int(c) for k, c in entry.get("counts", [])}))
        else:
            out.append(FeatureSample(name, "numerical", values=np.asarray(entry.get("values", []), dtype=np.float64)))
    return out


def load_reference(path: Path, features: Sequence[str], **options: Any) -> list[FeatureSample]:
    """A profile JSON, or a CSV of training rows profiled on the fly (same sampling)."""
    if path.suffix.lower() == ".json":
        return load_profile(path, features)
    return _samples(profile(read_columns(path, features), **options)["features"], features, path)
