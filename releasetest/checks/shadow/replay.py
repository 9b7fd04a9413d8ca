"""Replaying recorded requests through an endpoint, and comparing two sets of answers row by row.

Rows go out as production received them: one request per recorded correlation id (the collector
keeps one per request), or ``batch_size`` rows per request when the recording has no ids (a CSV).
A refused request is counted, not raised: the error rate is one of the findings.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from releasetest.checks.shadow.config import ShadowConfig
from releasetest.endpoint.client import ScoringClient
from releasetest.endpoint.formats import PREDICTION_KEYS
from releasetest.endpoint.handle import EndpointHandle
from releasetest.errors import EndpointError
from releasetest.release.manifest import Tolerance
from releasetest.release.traffic import Traffic

#: A change no larger than this is float noise (recorded answers keep about nine digits), not quoted.
NOISE = 1e-6
#: Percentiles of the replayed requests' latency in the findings.
PERCENTILES = (50, 95, 99)


def requests_of(traffic: Traffic, batch_size: int) -> list[list[int]]:
    """Row indices per replayed request, in time order: rows sharing a correlation id together (at
    most ``batch_size`` each), the others in chunks of ``batch_size``."""
    groups: dict[Any, list[int]] = {}
    loose: list[int] = []
    for i, cid in enumerate(traffic.correlation_ids):
        if cid is None:
            loose.append(i)
        else:
            groups.setdefault(cid, []).append(i)
    out = [g[k:k + batch_size] for g in groups.values() for k in range(0, len(g), batch_size)]
    out += [loose[k:k + batch_size] for k in range(0, len(loose), batch_size)]
    return sorted(out, key=lambda g: g[0])


@dataclass(frozen=True)
class Replay:
    """One endpoint's answers to the replayed rows (None where its request failed)."""

    source: str
    predictions: list[Any]
    probabilities: list[list[float] | None]
    requests: int
    errors: int
    latency_ms: list[float]
    error_messages: list[str]

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def summary(self) -> dict[str, Any]:
        lat = np.asarray(self.latency_ms, dtype=np.float64)
        return {"source": self.source, "requests": self.requests, "errors": self.errors,
                "error_rate": round(self.error_rate, 6), "first_errors": self.error_messages[:3],
                "latency_ms": ({f"p{p}": round(float(np.percentile(lat, p)), 2) for p in PERCENTILES}
                               if len(lat) else None)}


def replay(handle: EndpointHandle, rows: np.ndarray, groups: Sequence[Sequence[int]], source: str,
           timeout: float = 60.0) -> Replay:
    """Send each group of ``rows`` as one request; time each and keep its answers."""
    predictions: list[Any] = [None] * len(rows)
    probabilities: list[list[float] | None] = [None] * len(rows)
    latency, messages, errors = [], [], 0
    with ScoringClient(handle, timeout=timeout) as client:
        for group in groups:
            began = time.perf_counter()
            try:
                scored = client.score(rows[list(group)].tolist())
            except EndpointError as exc:
                errors += 1
                messages.append(str(exc).splitlines()[0][:300])
                continue
            latency.append((time.perf_counter() - began) * 1000)
            for k, i in enumerate(group):
                predictions[i] = scored.predictions[k]
                probabilities[i] = scored.probabilities[k] if scored.probabilities is not None else None
    return Replay(source, predictions, probabilities, len(groups), errors, latency, messages)


def recorded_replay(traffic: Traffic, answer_key: str | None, groups: Sequence[Sequence[int]]) -> Replay:
    """Production's recorded answers (``model_outputs``) as a replay: no latency, and a request
    counts as failed when the collector recorded no answer for it."""
    predictions: list[Any] = []
    probabilities: list[list[float] | None] = []
    for answer in traffic.recorded:
        pred, prob = recorded_answer(answer, answer_key)
        predictions.append(pred)
        probabilities.append(prob)
    errors = sum(1 for g in groups if all(predictions[i] is None for i in g))
    return Replay("recorded model_outputs", predictions, probabilities, len(groups), errors, [], [])


def recorded_answer(answer: Any, key: str | None) -> tuple[Any, list[float] | None]:
    """One row's recorded prediction (and probabilities) from what the collector kept for it."""
    if isinstance(answer, dict):
        name = key if key is not None else next((k for k in PREDICTION_KEYS if k in answer), None)
        prob = answer.get("probabilities")
        return (answer.get(name) if name is not None else None), (prob if isinstance(prob, list) else None)
    return answer, None


@dataclass(frozen=True)
class Comparison:
    """The candidate's answers against production's on the rows both answered."""

    compared: np.ndarray  # row indices both answered
    changed: np.ndarray  # bool per compared row
    change: np.ndarray  # per compared row: |difference| (regression) or probability shift / 0-1 (classification)

    @property
    def share_changed(self) -> float:
        return float(self.changed.mean()) if len(self.changed) else 0.0

    @property
    def mean_abs_change(self) -> float:
        return float(self.change.mean()) if len(self.change) else 0.0


def compare_answers(candidate: Replay, production: Replay, regression: bool, tolerance: Tolerance) -> Comparison:
    """Row by row: a label that differs (classification) or a value beyond ``tolerance``
    (regression); the size of each change orders the rows quoted."""
    both = [i for i, (c, p) in enumerate(zip(candidate.predictions, production.predictions, strict=True))
            if c is not None and p is not None]
    idx = np.asarray(both, dtype=np.int64)
    if regression:
        c = np.asarray([float(candidate.predictions[i]) for i in both], dtype=np.float64)
        p = np.asarray([float(production.predictions[i]) for i in both], dtype=np.float64)
        changed = np.asarray([not tolerance.agree(float(a), float(b)) for a, b in zip(c, p, strict=True)], dtype=bool)
        return Comparison(idx, changed, np.abs(c - p))
    changed = np.asarray([candidate.predictions[i] != production.predictions[i] for i in both], dtype=bool)
    size = changed.astype(np.float64)
    for k, i in enumerate(both):
        cp, pp = candidate.probabilities[i], production.probabilities[i]
        if cp is not None and pp is not None and len(cp) == len(pp):
            size[k] = max(size[k], float(np.max(np.abs(np.asarray(cp, float) - np.asarray(pp, float)))))
    return Comparison(idx, changed, size)


def segments(values: np.ndarray, count: int) -> tuple[list[str], np.ndarray]:
    """Segment labels and each row's segment: one per category (whole numbers with at most 20
    distinct values), else ``count`` equal-count bins."""
    finite = values[np.isfinite(values)]
    distinct = np.unique(finite)
    if len(distinct) <= 20 and np.all(distinct == np.round(distinct)):
        labels = [f"{v:g}" for v in distinct]
        return labels, np.searchsorted(distinct, values)
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, count + 1)))
    which = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    labels = [f"{edges[k]:.4g} to {edges[k + 1]:.4g}" for k in range(len(edges) - 1)]
    return labels, which


def by_segment(comparison: Comparison, values: np.ndarray, config: ShadowConfig, regression: bool,
               feature: str) -> list[dict[str, Any]]:
    """Per segment of ``feature``: rows compared, share changed, mean change, and whether it is
    within the per-segment bound (segments under ``min_segment_rows`` are not gated)."""
    labels, which = segments(values[comparison.compared], config.segments)
    bound = config.max_mean_abs_change_per_segment if regression else config.max_changed_per_segment
    out = []
    for k, label in enumerate(labels):
        mask = which == k
        n = int(mask.sum())
        if not n:
            continue
        share = float(comparison.changed[mask].mean())
        mean = float(comparison.change[mask].mean())
        value = mean if regression else share
        gated = bound is not None and n >= config.min_segment_rows
        out.append({"feature": feature, "segment": label, "rows": n, "changed_share": round(share, 6),
                    "mean_abs_change": round(mean, 6), "bound": bound, "gated": gated,
                    "passed": (value <= bound) if gated and bound is not None else None})
    return out


def most_changed(comparison: Comparison, traffic: Traffic, candidate: Replay, production: Replay,
                 top: int, root: Path) -> list[dict[str, Any]]:
    """The ``top`` rows whose answer moved most, quoted: where they were recorded (``file:line``,
    relative to ``root``), their inputs and both answers."""
    order = np.argsort(-comparison.change, kind="stable")[:top]
    out = []
    for k in order:
        if comparison.change[k] <= NOISE:
            break
        i = int(comparison.compared[k])
        out.append({"source": _relative(traffic.sources[i], root), "correlation_id": traffic.correlation_ids[i],
                    "inputs": {f: float(v) for f, v in zip(traffic.features, traffic.rows[i], strict=True)},
                    "production": production.predictions[i], "candidate": candidate.predictions[i],
                    "change": round(float(comparison.change[k]), 6)})
    return out


def _relative(source: str, root: Path) -> str:
    """``file:line`` with the file relative to ``root`` when it lies below it."""
    path, sep, where = source.rpartition(":")
    rel = os.path.relpath(path, root) if path and Path(path).is_absolute() else path
    return f"{path if rel.startswith('..') else rel}{sep}{where}"
