"""Scoring the holdout through an endpoint in order-preserving batches, several in flight."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from releasetest.checks.acceptance.config import DEFAULT_BATCH_SIZE, DEFAULT_CONCURRENCY, Champion
from releasetest.endpoint.client import ScoringClient
from releasetest.endpoint.handle import EndpointHandle
from releasetest.release.data import load_holdout
from releasetest.release.manifest import Release


@dataclass(frozen=True)
class BatchScores:
    predictions: list[Any]
    probabilities: np.ndarray | None
    seconds: float
    requests: int

    @property
    def rows_per_s(self) -> float:
        return len(self.predictions) / self.seconds if self.seconds > 0 else float("inf")


def score_rows(handle: EndpointHandle, rows: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE,
               concurrency: int = DEFAULT_CONCURRENCY, timeout: float = 60.0) -> BatchScores:
    """Score ``rows`` in order-preserving batches, ``concurrency`` requests in flight.

    One thread per connection, each with its own ``requests`` session (sessions are not
    thread-safe); the first failure stops every thread and is raised.
    """
    starts = list(range(0, len(rows), batch_size))
    results: list[Any] = [None] * len(starts)
    lock = threading.Lock()
    stop = threading.Event()
    pending = iter(range(len(starts)))

    def worker() -> None:
        with ScoringClient(handle, timeout=timeout) as client:
            while not stop.is_set():
                with lock:
                    k = next(pending, None)
                if k is None:
                    return
                try:
                    results[k] = client.score(rows[starts[k]:starts[k] + batch_size].tolist())
                except BaseException:
                    stop.set()
                    raise

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(starts)))) as pool:
        futures = [pool.submit(worker) for _ in range(max(1, min(concurrency, len(starts))))]
        for f in futures:
            f.result()
    seconds = time.perf_counter() - began
    predictions = [p for r in results for p in r.predictions]
    probabilities = None
    if all(r.probabilities is not None for r in results):
        probabilities = np.asarray([p for r in results for p in r.probabilities], dtype=np.float64)
    return BatchScores(predictions, probabilities, seconds, len(starts))


def champion_rows(champion: Champion, candidate: Release) -> np.ndarray:
    """The candidate's holdout rows, with the columns in the order the champion takes them."""
    assert candidate.data is not None
    if champion.release is None or champion.release.data is None:
        return load_holdout(candidate.data).rows
    return load_holdout(replace(candidate.data, features=champion.release.data.features,
                                expected_predictions=None)).rows

