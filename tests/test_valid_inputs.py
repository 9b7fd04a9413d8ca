"""The schema suite's generated valid inputs, in this process: the batches drawn while the endpoint
starts are the ones hypothesis sends, and a failure among them still goes through its shrinker."""

from __future__ import annotations

import numpy as np
import pytest

from releasetest.checks.contract.inputs import (
    DrawnBatches,
    Rows,
    learn_ranges,
    send_valid_inputs,
    valid_inputs_test,
)

#: Two whole-number features: a in 0..10, b in -2..1.
RANGES = learn_ranges(["a", "b"], np.array([[0.0, 1.0], [10.0, -2.0], [4.0, 0.0]]))


class Refused(Exception):
    def __init__(self, rows: Rows):
        super().__init__(rows)
        self.rows = rows


def test_the_drawn_batches_are_the_ones_hypothesis_generates() -> None:
    sent: list[Rows] = []
    valid_inputs_test(RANGES, 4, None, 25, sent.append)()
    drawn = DrawnBatches.draw(RANGES, 4, None, 25)
    assert list(drawn.batches) == sent and len(sent) == 25
    assert all(1 <= len(rows) <= 4 and all(0 <= r[0] <= 10 and -2 <= r[1] <= 1 for r in rows) for rows in sent)


def test_drawn_batches_are_sent_as_drawn_after_the_explicit_ones() -> None:
    """Nothing is generated again: batches no strategy over these ranges could make go out as they are."""
    drawn = DrawnBatches(tuple(RANGES), 4, None, 25, ([[99.0, 99.0]], [[98.0, 98.0]]))
    sent: list[Rows] = []
    send_valid_inputs(sent.append, [[[1.0, 1.0]]], RANGES, 4, None, 25, drawn)
    assert sent == [[[1.0, 1.0]], [[99.0, 99.0]], [[98.0, 98.0]]]


@pytest.mark.parametrize("other", [{"max_rows": 3}, {"seed": 7}, {"max_examples": 24}])
def test_batches_drawn_for_other_settings_are_not_used(other: dict[str, int]) -> None:
    drawn = DrawnBatches(tuple(RANGES), 4, None, 25, ([[99.0, 99.0]],))
    settings = {"max_rows": 4, "seed": None, "max_examples": 25, **other}
    sent: list[Rows] = []
    send_valid_inputs(sent.append, [], RANGES, drawn=drawn, **settings)  # type: ignore[arg-type]
    assert [[99.0, 99.0]] not in sent and len(sent) == settings["max_examples"]


def test_a_failing_drawn_batch_is_shrunk() -> None:
    """To the batch hypothesis's own run of the same test ends with: one row."""
    def send(rows: Rows) -> None:
        if any(r[0] >= 3 for r in rows):
            raise Refused(rows)

    with pytest.raises(Refused) as alone:
        valid_inputs_test(RANGES, 4, None, 25, send)()
    drawn = DrawnBatches.draw(RANGES, 4, None, 25)
    assert any(len(rows) > 1 and r[0] >= 3 for rows in drawn.batches for r in rows), "a larger failing batch"
    with pytest.raises(Refused) as raised:
        send_valid_inputs(send, [], RANGES, 4, None, 25, drawn)
    assert raised.value.rows == alone.value.rows and len(raised.value.rows) == 1


def test_a_drawn_failure_that_does_not_recur_is_raised_as_it_was() -> None:
    """hypothesis's own run passes (it never generates the failing batch): the drawn failure stands."""
    drawn = DrawnBatches(tuple(RANGES), 4, None, 25, ([[99.0, 99.0]],))

    def send(rows: Rows) -> None:
        if rows == [[99.0, 99.0]]:
            raise Refused(rows)

    with pytest.raises(Refused) as raised:
        send_valid_inputs(send, [], RANGES, 4, None, 25, drawn)
    assert raised.value.rows == [[99.0, 99.0]]
