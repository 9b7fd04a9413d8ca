"""Valid inputs: feature ranges learnt from the holdout and hypothesis strategies over them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st


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


def learn_ranges(features: Sequence[str], rows: np.ndarray,
                 integer: Sequence[bool] | None = None) -> list[FeatureRange]:
    """Min/max per feature from the holdout, and whether it takes whole numbers only: as a signature
    says (``integer``, an MLflow model's), else as the holdout shows (it only ever holds them)."""
    return [FeatureRange(name, float(rows[:, i].min()), float(rows[:, i].max()),
                         integer[i] if integer is not None else bool(np.all(rows[:, i] == np.round(rows[:, i]))))
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

