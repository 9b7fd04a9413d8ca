"""The ``[acceptance]`` manifest table: batch scoring settings, parity, the champion and thresholds.

Thresholds follow MLflow's ``MetricThreshold``: per metric an absolute ``min``, and
``min_absolute_change`` / ``min_relative_change`` against named references. Every metric is
"greater is better". A negative change is a tolerance (the champion may be beaten by at most that
much); a positive one is a margin the candidate must win by."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from releasetest.checks.metrics import metric_names
from releasetest.endpoint.url import handle_for_url
from releasetest.errors import ConfigError
from releasetest.release.manifest import Release, Stage, load_release

REFERENCES = ("majority", "persistence", "champion")


KINDS = ("min", "min_absolute_change", "min_relative_change")


#: Batch size and concurrency measured on the example (docs/acceptance.md): big enough that the
#: per-request cost is small, two in flight so client-side JSON overlaps server-side scoring.
DEFAULT_BATCH_SIZE = 500


DEFAULT_CONCURRENCY = 2


DEFAULT_PARITY = 0.999


DEFAULT_CHAMPION_KEY_ENV = "RELEASETEST_CHAMPION_KEY"


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

