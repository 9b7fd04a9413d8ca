"""The release's holdout rows and the predictions recorded for them at training time."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from releasetest.errors import ConfigError
from releasetest.release.manifest import EXACT, DataSpec, Tolerance


class Expected(list[Any]):
    """Predictions recorded at training time, and how closely a served answer must match them:
    what the golden check compares with (a list, so it travels wherever golden labels do)."""

    def __init__(self, values: Iterable[Any] = (), tolerance: Tolerance = EXACT) -> None:
        super().__init__(values)
        self.tolerance = tolerance

    @classmethod
    def of(cls, values: list[Any]) -> Expected:
        """``values`` themselves when they carry a tolerance, else compared exactly."""
        return values if isinstance(values, Expected) else cls(values)

    def mismatch(self, got: list[Any]) -> str | None:
        """Why ``got`` is not what was recorded (the differing rows quoted), or None."""
        if len(got) != len(self):
            return f"{len(got)} predictions for {len(self)} golden rows"
        bad = self.tolerance.mismatches(got, self)
        if not bad:
            return None
        shown = "; ".join(f"row {i + 1}: got {got[i]!r}, recorded {self[i]!r}" for i in bad[:5])
        return (f"{len(bad)} of {len(got)} golden rows differ from the training-time predictions "
                f"({self.tolerance.describe()}): {shown}")


@dataclass(frozen=True)
class Holdout:
    """Feature rows in model order, true labels, and (if shipped) the training-time predictions."""

    features: tuple[str, ...]
    rows: np.ndarray
    labels: list[Any]
    expected: list[Any] | None
    classes: tuple[Any, ...] = ()
    tolerance: Tolerance = EXACT

    def __len__(self) -> int:
        return len(self.labels)

    def golden(self, n: int) -> tuple[list[list[float]], Expected]:
        """First ``n`` rows, plus the first row of any class they miss, with the labels the model
        gave them at training time: a readiness check that every class still comes out."""
        if self.expected is None:
            raise ConfigError(None, "data.expected_predictions", "no expected predictions shipped",
                              "record the model's predictions on the holdout at training time")
        idx = list(range(min(n, len(self.expected))))
        for cls in self.classes:
            if cls in self.expected and all(self.expected[i] != cls for i in idx):
                idx.append(self.expected.index(cls))
        return self.rows[idx].tolist(), Expected((self.expected[i] for i in idx), self.tolerance)


def _coerce_value(value: str, path: Path, where: str) -> float:
    """A regression label or prediction from CSV text; anything but a finite number is refused."""
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not np.isfinite(number):
        raise ConfigError(path, where, f"{value!r} is not a finite number, and a regression's values must be",
                          "clean the row or drop it from the file")
    return number


def _coerce_label(value: str, classes: tuple[Any, ...]) -> Any:
    """Labels in CSV are text; match them to the manifest's class values (ints stay ints)."""
    for c in classes:
        if str(c) == value:
            return c
    try:
        as_float = float(value)
    except ValueError:
        return value
    for c in classes:
        if isinstance(c, (int, float)) and not isinstance(c, bool) and float(c) == as_float:
            return c
    return value


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise ConfigError(path, None, "empty CSV file", "write a header row and data rows") from None
        return header, [row for row in reader if row]


def load_holdout(spec: DataSpec) -> Holdout:
    header, body = _read_csv(spec.holdout)
    missing = [c for c in (*spec.features, spec.label) if c not in header]
    if missing:
        raise ConfigError(spec.holdout, ", ".join(missing), "column(s) named in the manifest's [data] are missing",
                          "columns present: " + ", ".join(header))
    idx = [header.index(c) for c in spec.features]
    li = header.index(spec.label)
    rows = np.empty((len(body), len(idx)), dtype=np.float64)
    for r, line in enumerate(body):
        try:
            rows[r] = [float(line[i]) for i in idx]
        except (ValueError, IndexError):
            raise ConfigError(spec.holdout, f"row {r + 2}", f"non-numeric or missing feature value in {line!r}",
                              "clean the row or drop it from the holdout") from None
    if spec.task == "regression":
        labels = [_coerce_value(line[li], spec.holdout, f"row {r + 2}, {spec.label}") for r, line in enumerate(body)]
    else:
        labels = [_coerce_label(line[li], spec.classes) for line in body]
    unknown = sorted({str(v) for v in labels if v not in spec.classes}) if spec.classes else []
    if unknown:
        raise ConfigError(spec.holdout, spec.label, f"labels {unknown} are not in data.classes {list(spec.classes)}",
                          "add them to classes in the manifest or fix the CSV")
    expected = None
    if spec.expected_predictions is not None:
        eh, eb = _read_csv(spec.expected_predictions)
        if "label" not in eh:
            raise ConfigError(spec.expected_predictions, "label", "no 'label' column",
                              "write one prediction per holdout row in a 'label' column")
        if len(eb) != len(body):
            raise ConfigError(spec.expected_predictions, None,
                              f"{len(eb)} predictions for {len(body)} holdout rows",
                              "regenerate both files with the training script")
        ei = eh.index("label")
        if spec.task == "regression":
            expected = [_coerce_value(line[ei], spec.expected_predictions, f"row {r + 2}, label")
                        for r, line in enumerate(eb)]
        else:
            expected = [_coerce_label(line[ei], spec.classes) for line in eb]
    return Holdout(features=spec.features, rows=rows, labels=labels, expected=expected, classes=spec.classes,
                   tolerance=spec.tolerance)
