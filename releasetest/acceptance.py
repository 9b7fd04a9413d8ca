"""Acceptance: the ``[acceptance]`` manifest table, batch scoring of the holdout through an
endpoint, the naive baselines and the champion as references, and threshold decisions.

No pytest here: the suite (``suites/suite_acceptance.py``) does the fixtures and assertions, this
module does the work and is unit-tested directly.

Thresholds follow MLflow's ``MetricThreshold``: per metric an absolute ``min``, and
``min_absolute_change`` / ``min_relative_change`` against named references. Every metric is
"greater is better". A negative change is a tolerance (the champion may be beaten by at most that
much); a positive one is a margin the candidate must win by.
"""

from __future__ import annotations

import difflib
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .client import ScoringClient
from .data import Holdout, load_holdout
from .errors import ConfigError, DeployError, EndpointError
from .metrics import Metrics, class_distribution, classification_metrics, metric_names
from .spec import DataSpec, Release, Stage, load_release
from .targets.base import Endpoint, EndpointHandle
from .targets.url import UrlEndpoint, handle_for_url

REFERENCES = ("majority", "persistence", "champion")
KINDS = ("min", "min_absolute_change", "min_relative_change")
#: Batch size and concurrency measured on the example (docs/acceptance.md): big enough that the
#: per-request cost is small, two in flight so client-side JSON overlaps server-side scoring.
DEFAULT_BATCH_SIZE = 500
DEFAULT_CONCURRENCY = 2
DEFAULT_PARITY = 0.999
DEFAULT_CHAMPION_KEY_ENV = "RELEASETEST_CHAMPION_KEY"
#: Mismatching rows named in the verdict (the first ones, in holdout order).
SHOWN_MISMATCHES = 10
_KEYS = {"batch_size", "concurrency", "parity", "persistence_feature", "champion", "champion_key_env",
         "thresholds"}


@dataclass(frozen=True)
class Threshold:
    metric: str
    kind: str  # one of KINDS
    margin: float  # the configured number: a minimum, or a change
    reference: str | None = None  # None for kind "min"


@dataclass(frozen=True)
class Champion:
    """The release in production: its manifest (deployed side by side) or its URL."""

    source: str
    release: Release | None = None
    url: str | None = None
    key_env: str = DEFAULT_CHAMPION_KEY_ENV


#: Without thresholds in the manifest a model must at least beat "always the majority class".
DEFAULT_THRESHOLDS = (Threshold("balanced_accuracy", "min_absolute_change", 0.05, "majority"),)


@dataclass(frozen=True)
class AcceptanceConfig:
    batch_size: int = DEFAULT_BATCH_SIZE
    concurrency: int = DEFAULT_CONCURRENCY
    parity: float = DEFAULT_PARITY
    persistence_feature: str | None = None
    champion: Champion | None = None
    thresholds: tuple[Threshold, ...] = DEFAULT_THRESHOLDS

    def describe(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "concurrency": self.concurrency, "parity": self.parity,
                "persistence_feature": self.persistence_feature,
                "champion": self.champion.source if self.champion else None}


# ---------------------------------------------------------------------------------------------
# The [acceptance] table


def _number(value: Any, file: Path, key: str, fix: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ConfigError(file, key, f"expected a number, got {type(value).__name__} {value!r}", fix)
    return float(value)


def _positive_int(table: dict[str, Any], key: str, default: int, file: Path) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(file, f"acceptance.{key}", f"expected a whole number >= 1, got {value!r}",
                          f"e.g. {key} = {default}")
    return value


def _unknown(key: str, known: Sequence[str], file: Path, where: str, what: str) -> ConfigError:
    close = difflib.get_close_matches(key, list(known), n=1)
    fix = f"did you mean '{close[0]}'?" if close else f"use one of: {', '.join(known)}"
    return ConfigError(file, where, f"unknown {what} '{key}'", fix)


def _parse_thresholds(raw: Any, release: Release, file: Path) -> tuple[Threshold, ...]:
    assert release.data is not None
    example = "balanced_accuracy = { min = 0.8, min_absolute_change = { majority = 0.2 } }"
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(file, "acceptance.thresholds", "expected a table of metric = { ... }",
                          f"write [acceptance.thresholds] with lines like {example}")
    known = metric_names(release.data.classes)
    out: list[Threshold] = []
    for metric, spec in raw.items():
        where = f"acceptance.thresholds.{metric}"
        if metric not in known:
            raise _unknown(metric, known, file, where, "metric")
        if not isinstance(spec, dict) or not spec:
            raise ConfigError(file, where, f"expected a table, got {spec!r}", f"e.g. {example}")
        for kind, value in spec.items():
            if kind not in KINDS:
                raise _unknown(kind, KINDS, file, f"{where}.{kind}", "threshold kind")
            if kind == "min":
                out.append(Threshold(metric, kind, _number(value, file, f"{where}.min", "e.g. min = 0.8")))
                continue
            if not isinstance(value, dict) or not value:
                raise ConfigError(file, f"{where}.{kind}", f"expected a table of reference = change, got {value!r}",
                                  f"e.g. {kind} = {{ majority = 0.05, champion = -0.01 }}")
            for ref, change in value.items():
                if ref not in REFERENCES:
                    raise _unknown(ref, REFERENCES, file, f"{where}.{kind}.{ref}", "reference")
                out.append(Threshold(metric, kind, _number(change, file, f"{where}.{kind}.{ref}",
                                                           "a number; negative means a tolerance"), ref))
    return tuple(out)


def _parse_champion(table: dict[str, Any], release: Release, stage: Stage, file: Path) -> Champion | None:
    source = table.get("champion")
    key_env = table.get("champion_key_env", DEFAULT_CHAMPION_KEY_ENV)
    if not isinstance(key_env, str) or not key_env:
        raise ConfigError(file, "acceptance.champion_key_env", f"expected a variable name, got {key_env!r}",
                          f"e.g. champion_key_env = \"{DEFAULT_CHAMPION_KEY_ENV}\"")
    if source is None:
        return None
    if not isinstance(source, str) or not source:
        raise ConfigError(file, "acceptance.champion", f"expected a string, got {source!r}",
                          "the production release's manifest path, or its scoring URL")
    if source.startswith(("http://", "https://")):
        handle_for_url(source, None)  # refuses a malformed URL now, before deploy
        return Champion(source, url=source, key_env=key_env)
    path = (release.root / source).resolve()
    if path == release.manifest.resolve():
        raise ConfigError(file, "acceptance.champion", "points at the candidate's own manifest",
                          "name the manifest of the release now in production")
    try:
        champ = load_release(path)
    except ConfigError as exc:
        raise ConfigError(file, "acceptance.champion", f"the champion release is not valid: {exc}",
                          "fix the champion's manifest or point at another one") from None
    assert release.data is not None
    if champ.data is None or champ.data.expected_predictions is None:
        raise ConfigError(path, "data", "the champion needs [data] with expected_predictions",
                          "they are its readiness check when deployed side by side")
    if tuple(champ.data.classes) != tuple(release.data.classes):
        raise ConfigError(file, "acceptance.champion",
                          f"champion classes {list(champ.data.classes)} differ from {list(release.data.classes)}",
                          "a champion is compared on the same classes")
    champ.stage(stage.name)  # the champion is deployed with its own config for the same stage
    return Champion(source, release=champ, key_env=key_env)


def parse(table: dict[str, Any], release: Release, stage: Stage) -> AcceptanceConfig:
    """Check the ``[acceptance]`` table; a bad value is a ConfigError naming the key and the fix."""
    file = release.manifest
    for key in table:
        if key not in _KEYS:
            raise _unknown(key, sorted(_KEYS), file, f"acceptance.{key}", "key")
    assert release.data is not None
    parity = _number(table.get("parity", DEFAULT_PARITY), file, "acceptance.parity", "e.g. parity = 0.999")
    if not 0 < parity <= 1:
        raise ConfigError(file, "acceptance.parity", f"{parity} is not a share in (0, 1]", "e.g. parity = 0.999")
    feature = table.get("persistence_feature")
    if feature is not None and feature not in release.data.features:
        raise ConfigError(file, "acceptance.persistence_feature", f"{feature!r} is not one of data.features",
                          "name the feature holding the current value of the label, e.g. "
                          + ", ".join(release.data.features))
    thresholds = (_parse_thresholds(table["thresholds"], release, file) if "thresholds" in table
                  else DEFAULT_THRESHOLDS)
    champion = _parse_champion(table, release, stage, file)
    used = {t.reference for t in thresholds}
    if "persistence" in used and feature is None:
        raise ConfigError(file, "acceptance.thresholds", "a threshold compares against 'persistence' but "
                          "acceptance.persistence_feature is not set", "name the feature persistence repeats")
    if "champion" in used and champion is None:
        raise ConfigError(file, "acceptance.thresholds", "a threshold compares against 'champion' but "
                          "acceptance.champion is not set", "set champion = the production manifest or URL")
    if champion is not None and "champion" not in used:
        raise ConfigError(file, "acceptance.champion", "is set, but no threshold compares against it",
                          "add e.g. min_absolute_change = { champion = -0.01 } to a metric's threshold")
    return AcceptanceConfig(
        batch_size=_positive_int(table, "batch_size", DEFAULT_BATCH_SIZE, file),
        concurrency=_positive_int(table, "concurrency", DEFAULT_CONCURRENCY, file),
        parity=parity, persistence_feature=feature, champion=champion, thresholds=thresholds)


# ---------------------------------------------------------------------------------------------
# Scoring through an endpoint


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


class ChampionUrlEndpoint(UrlEndpoint):
    """Production, already running: its answers are what is measured, so readiness is liveness only
    (the candidate's golden labels are no test for another model)."""

    def __init__(self, url: str, key_env: str, ready_timeout_s: float = 30.0):
        super().__init__(url, key_env, ([], []), ready_timeout_s)

    def deploy(self) -> EndpointHandle:
        handle = handle_for_url(self.url, os.environ.get(self.key_env) or None, target="champion",
                                key_env=self.key_env)
        with ScoringClient(handle, timeout=self.ready_timeout_s) as client:
            try:
                status = client.liveness().status_code
            except EndpointError as exc:
                raise DeployError(f"champion at {self.url} is not answering: {exc}") from None
        if status != 200:
            raise DeployError(f"champion at {self.url}: liveness answered {status}")
        self._handle = handle
        return handle


def champion_endpoint(champion: Champion, stage: str, log_path: Path, ready_timeout_s: float) -> Endpoint:
    """The champion's endpoint, not yet deployed: a second local server, or its URL."""
    if champion.url is not None:
        return ChampionUrlEndpoint(champion.url, champion.key_env, ready_timeout_s)
    from .targets.local import LocalEndpoint

    rel = champion.release
    assert rel is not None and rel.data is not None
    golden = load_holdout(rel.data).golden(rel.data.golden_rows)
    return LocalEndpoint(rel, rel.stage(stage), golden, log_path=log_path, ready_timeout_s=ready_timeout_s)


def champion_rows(champion: Champion, candidate: Release) -> np.ndarray:
    """The candidate's holdout rows, with the columns in the order the champion takes them."""
    assert candidate.data is not None
    if champion.release is None or champion.release.data is None:
        return load_holdout(candidate.data).rows
    spec = DataSpec(holdout=candidate.data.holdout, features=champion.release.data.features,
                    label=candidate.data.label, classes=candidate.data.classes, expected_predictions=None,
                    golden_rows=0)
    return load_holdout(spec).rows


# ---------------------------------------------------------------------------------------------
# References, thresholds, parity


def majority_baseline(labels: Sequence[Any], classes: Sequence[Any]) -> tuple[list[Any], np.ndarray]:
    """Always the holdout's most frequent class (the strictest constant baseline); constant scores."""
    counts = [sum(1 for x in labels if x == c) for c in classes]
    top = classes[int(np.argmax(counts))]
    return [top] * len(labels), np.tile(_one_hot(top, classes), (len(labels), 1))


def persistence_baseline(holdout: Holdout, feature: str, classes: Sequence[Any]) -> tuple[list[Any], np.ndarray]:
    """"The future equals the present": the label is the value of ``feature`` in the same row."""
    column = holdout.rows[:, holdout.features.index(feature)]
    preds: list[Any] = []
    for v in column:
        match = [c for c in classes if isinstance(c, (int, float)) and float(c) == v]
        if not match:
            raise ValueError(f"persistence feature {feature} has value {v:g}, which is not one of the classes "
                             f"{list(classes)}")
        preds.append(match[0])
    return preds, np.asarray([_one_hot(p, classes) for p in preds])


def _one_hot(value: Any, classes: Sequence[Any]) -> list[float]:
    return [1.0 if c == value else 0.0 for c in classes]


@dataclass(frozen=True)
class ThresholdResult:
    threshold: Threshold
    value: float | None
    reference_value: float | None
    bound: float | None
    passed: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        t = self.threshold
        return {"metric": t.metric, "kind": t.kind, "bound": self.bound, "value": self.value,
                "reference": t.reference, "reference_value": self.reference_value, "margin": t.margin,
                "passed": self.passed, "message": self.message}


def _f(x: float) -> str:
    return f"{x:.4f}"


def check_threshold(t: Threshold, metrics: dict[str, float],
                    references: dict[str, dict[str, float]], missing: dict[str, str]) -> ThresholdResult:
    """One threshold against the candidate's metrics; the message says what was needed and why."""
    value = metrics.get(t.metric)
    if value is None:
        why = "the endpoint returns no probabilities" if t.metric == "roc_auc" else "not computed"
        return ThresholdResult(t, None, None, None, False, f"{t.metric} is not available: {why}")
    if t.kind == "min":
        ok = value >= t.margin
        text = f"{t.metric} {_f(value)} " + ("meets" if ok else "is below") + f" the minimum {_f(t.margin)}"
        return ThresholdResult(t, value, None, t.margin, ok, text)
    assert t.reference is not None
    ref = references.get(t.reference, {}).get(t.metric)
    if ref is None:
        why = missing.get(t.reference, f"{t.reference} has no {t.metric}")
        return ThresholdResult(t, value, None, None, False, f"{t.metric} vs {t.reference}: not compared ({why})")
    if t.kind == "min_absolute_change":
        bound, amount = ref + t.margin, _f(abs(t.margin))
    else:
        bound, amount = ref + t.margin * abs(ref), f"{abs(t.margin):.2%}"
    ok = value >= bound
    name = "champion" if t.reference == "champion" else f"{t.reference} baseline"
    if t.margin >= 0:
        verb = "beats" if ok else "does not beat"
        text = f"{t.metric} {_f(value)} {verb} {name} {_f(ref)} by margin {amount}"
    else:
        verb = "stays within" if ok else "regresses beyond"
        text = f"{t.metric} {_f(value)} {verb} tolerance {amount} of {name} {_f(ref)}"
    return ThresholdResult(t, value, ref, bound, ok, f"{text} (needs >= {_f(bound)})")


def parity_check(predictions: Sequence[Any], holdout: Holdout, required: float,
                 shown: int = SHOWN_MISMATCHES) -> dict[str, Any]:
    """Endpoint predictions vs the ones recorded at training time, naming the first mismatches."""
    assert holdout.expected is not None
    bad = [i for i, (got, exp) in enumerate(zip(predictions, holdout.expected, strict=True)) if got != exp]
    agreement = 1 - len(bad) / len(predictions)
    mismatches = [{"row": i, "inputs": dict(zip(holdout.features, holdout.rows[i].tolist(), strict=True)),
                   "expected": holdout.expected[i], "got": predictions[i]} for i in bad[:shown]]
    return {"agreement": agreement, "required": required, "mismatching_rows": len(bad),
            "mismatches": mismatches, "passed": agreement >= required}


@dataclass
class Evaluation:
    """The candidate, its references and every decision, as the verdict records them."""

    config: AcceptanceConfig
    candidate: Metrics
    scores: BatchScores
    references: dict[str, Metrics]
    reference_errors: dict[str, str]
    thresholds: list[ThresholdResult]
    parity: dict[str, Any] | None
    holdout_distribution: dict[str, float]
    notes: list[str] = field(default_factory=list)

    def failed(self, references: Sequence[str | None]) -> list[ThresholdResult]:
        return [r for r in self.thresholds if r.threshold.reference in references and not r.passed]

    def findings(self) -> dict[str, Any]:
        return {
            "metrics": self.candidate.values,
            "thresholds": [r.as_dict() for r in self.thresholds],
            "references": {name: m.values for name, m in self.references.items()},
            "reference_errors": self.reference_errors,
            "confusion_matrix": self.candidate.confusion_dict(),
            "class_distribution": {"predicted": self.candidate.distribution, "holdout": self.holdout_distribution},
            "scoring": {"rows": len(self.scores.predictions), "requests": self.scores.requests,
                        "seconds": round(self.scores.seconds, 3), "rows_per_s": round(self.scores.rows_per_s, 1),
                        **self.config.describe()},
        } | ({"parity": self.parity} if self.parity is not None else {})


def evaluate(config: AcceptanceConfig, holdout: Holdout, classes: Sequence[Any], candidate: BatchScores,
             champion: BatchScores | None = None, champion_error: str | None = None) -> Evaluation:
    """Metrics of the candidate and of every reference on the same holdout, and every threshold."""
    classes = tuple(classes)
    unknown = sorted({repr(p) for p in candidate.predictions if p not in classes})
    if unknown:
        raise EndpointError(f"the endpoint returned labels outside the release's classes {list(classes)}: "
                            + ", ".join(unknown[:5]))
    probs = candidate.probabilities
    notes = []
    if probs is not None and probs.shape != (len(holdout), len(classes)):
        notes.append(f"probabilities have shape {probs.shape}, not ({len(holdout)}, {len(classes)}): ROC AUC skipped")
        probs = None
    metrics = classification_metrics(holdout.labels, candidate.predictions, classes, probs)
    refs: dict[str, Metrics] = {}
    errors: dict[str, str] = {}
    preds, scores = majority_baseline(holdout.labels, classes)
    refs["majority"] = classification_metrics(holdout.labels, preds, classes, scores)
    if config.persistence_feature:
        try:
            preds, scores = persistence_baseline(holdout, config.persistence_feature, classes)
            refs["persistence"] = classification_metrics(holdout.labels, preds, classes, scores)
        except ValueError as exc:
            errors["persistence"] = str(exc)
    if champion is not None:
        cp = champion.probabilities
        if cp is not None and cp.shape != (len(holdout), len(classes)):
            cp = None
        refs["champion"] = classification_metrics(holdout.labels, champion.predictions, classes, cp)
    elif config.champion is not None:
        errors["champion"] = champion_error or "champion not scored"
    ref_values = {name: m.values for name, m in refs.items()}
    results = [check_threshold(t, metrics.values, ref_values, errors) for t in config.thresholds]
    parity = parity_check(candidate.predictions, holdout, config.parity) if holdout.expected is not None else None
    return Evaluation(config, metrics, candidate, refs, errors, results, parity,
                      class_distribution(holdout.labels, classes), notes)


def constant_prediction(predictions: Sequence[Any]) -> Any | None:
    """The one class predicted for every row, or None when predictions vary."""
    first = predictions[0] if predictions else None
    return first if predictions and all(p == first for p in predictions) else None

