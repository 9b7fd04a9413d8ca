"""Valid inputs: feature ranges learnt from the holdout, hypothesis strategies over them, and the
hypothesis run that sends the generated batches.

hypothesis generates the same batches whatever the endpoint answers, until one fails: so they can
be drawn while the endpoint starts (:func:`draw_ahead`) and only sent once it is ready. A failure
among them re-runs the same hypothesis test, which reaches that batch again and shrinks it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import hypothesis
import numpy as np
from hypothesis import HealthCheck, example, given
from hypothesis import strategies as st

from releasetest.endpoint.formats import wire_spec

if TYPE_CHECKING:
    from releasetest.checks.contract.config import SchemaConfig
    from releasetest.release.data import Holdout
    from releasetest.release.manifest import Release, Stage

#: One request's rows.
Rows = list[list[float]]


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


def valid_inputs_test(ranges: Sequence[FeatureRange], max_rows: int, seed: int | None, max_examples: int,
                      send: Callable[[Rows], None], explicit: Sequence[Rows] = ()) -> Callable[[], None]:
    """hypothesis's test of ``send`` over generated batches, after the ``explicit`` ones in their
    order (they do not change what it generates). Unseeded it is derandomized: every run sends the same batches."""

    def batch(rows: Rows) -> None:
        send(rows)

    test = given(rows=rows_strategy(ranges, max_rows))(batch)
    for rows in reversed(explicit):  # hypothesis runs the last one applied first
        test = example(rows=rows)(test)
    if seed is not None:
        test = hypothesis.seed(seed)(test)
    return hypothesis.settings(
        max_examples=max_examples, derandomize=seed is None, database=None, deadline=None,
        report_multiple_bugs=False, print_blob=False, suppress_health_check=[HealthCheck.too_slow],
    )(test)


@dataclass(frozen=True)
class DrawnBatches:
    """The batches :func:`valid_inputs_test` generates for these ranges and settings, drawn before
    any is sent."""

    ranges: tuple[FeatureRange, ...]
    max_rows: int
    seed: int | None
    max_examples: int
    batches: tuple[Rows, ...]

    @classmethod
    def draw(cls, ranges: Sequence[FeatureRange], max_rows: int, seed: int | None, max_examples: int) -> DrawnBatches:
        drawn: list[Rows] = []
        valid_inputs_test(ranges, max_rows, seed, max_examples, drawn.append)()
        return cls(tuple(ranges), max_rows, seed, max_examples, tuple(drawn))

    def fits(self, ranges: Sequence[FeatureRange], max_rows: int, seed: int | None, max_examples: int) -> bool:
        return (self.ranges, self.max_rows, self.seed, self.max_examples) == (tuple(ranges), max_rows, seed,
                                                                               max_examples)


def send_valid_inputs(send: Callable[[Rows], None], explicit: Sequence[Rows], ranges: Sequence[FeatureRange],
                      max_rows: int, seed: int | None, max_examples: int, drawn: DrawnBatches | None = None) -> None:
    """Send the explicit batches, then the generated ones; what ``send`` raises for a batch is
    raised for hypothesis's smallest failing batch. Batches ``drawn`` ahead for the same ranges and
    settings are sent as they are; only a failure among them runs hypothesis (to shrink it), and
    should that run not fail again, the drawn batch's failure is raised unshrunk."""
    failed: Exception | None = None
    if drawn is not None and drawn.fits(ranges, max_rows, seed, max_examples):
        try:
            for rows in (*explicit, *drawn.batches):
                send(rows)
        except Exception as exc:  # noqa: BLE001 - whatever send raised, the shrinking run raises it again
            failed = exc
        else:
            return
    valid_inputs_test(ranges, max_rows, seed, max_examples, send, explicit)()
    if failed is not None:
        raise failed


def draw_ahead(config: SchemaConfig, release: Release, stage: Stage, holdout: Holdout) -> DrawnBatches | None:
    """The schema suite's generated batches, drawn while the endpoint starts, for the ranges the
    holdout shows (where an MLflow signature's column types say otherwise about whole numbers, the
    suite generates its own)."""
    if release.data is None:
        return None
    batch = wire_spec(release).batch_size
    ranges = learn_ranges(release.data.features, holdout.rows)
    return DrawnBatches.draw(ranges, min(config.max_rows, batch or config.max_rows), config.seed,
                             config.max_examples)
