"""The ``[shadow]`` manifest table: how far the candidate's answers to recorded production requests
may move from production's, overall and per segment of one feature, and how many requests may fail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from releasetest.errors import ConfigError
from releasetest.release.manifest import Release, Stage
from releasetest.tables import Key, Table, check

#: Share of recorded rows whose label may change: a new model changes some answers, but more than
#: one in twenty on production's own traffic is a shift a reviewer should see before it ships.
DEFAULT_MAX_CHANGED = 0.05
#: The mirror phase's latency bound: the new deployment's p95 may be half again the live one's (a model
#: that is 50% slower at p95 on the same requests is a capacity change someone should plan for) ...
DEFAULT_MAX_LATENCY_RATIO = 1.5
#: ... unless it is at most this much slower: a few milliseconds of p95 over a few hundred requests is noise.
DEFAULT_LATENCY_ALLOWANCE_MS = 10.0

SHADOW = Table({
    "max_changed": Key("number", "the share of recorded rows whose label may change (classification)",
                       default=DEFAULT_MAX_CHANGED, ge=0, le=1),
    "max_mean_abs_change": Key("number", "the mean absolute change of a regression's predictions allowed",
                               ge=0, example=0.5),
    "segment": Key("str", "the feature whose values split the rows into segments", ge=1,
                   example="Current_weather_condition"),
    "segments": Key("int", "segments of a numerical segment feature (equal-count bins)", default=4, ge=2, le=20),
    "max_changed_per_segment": Key("number", "the share changed allowed in every segment (classification)",
                                   ge=0, le=1, example=0.1),
    "max_mean_abs_change_per_segment": Key("number", "the mean absolute change allowed in every segment "
                                           "(regression)", ge=0, example=1.0),
    "min_segment_rows": Key("int", "segments with fewer rows are shown but not gated", default=30, ge=1),
    "max_error_rate": Key("number", "the share of recorded requests the candidate may fail beyond production",
                          default=0.0, ge=0, le=1),
    "max_latency_ratio": Key("number", "the mirror phase: the new deployment's p95 latency over the live one's",
                             default=DEFAULT_MAX_LATENCY_RATIO, ge=1),
    "latency_allowance_ms": Key("number", "the mirror phase: a p95 this many ms above the live one's always passes",
                                default=DEFAULT_LATENCY_ALLOWANCE_MS, ge=0),
    "max_recorded_mismatch": Key("number", "the share of rows production may now answer differently from what "
                                 "it recorded", default=0.0, ge=0, le=1),
    "batch_size": Key("int", "rows per replayed request when the recording does not group rows into requests",
                      default=100, ge=1),
    "top": Key("int", "the most changed rows quoted in the verdict", default=10, ge=0),
})


@dataclass(frozen=True)
class ShadowConfig:
    max_changed: float = DEFAULT_MAX_CHANGED
    max_mean_abs_change: float | None = None
    segment: str | None = None
    segments: int = 4
    max_changed_per_segment: float | None = None
    max_mean_abs_change_per_segment: float | None = None
    min_segment_rows: int = 30
    max_error_rate: float = 0.0
    max_latency_ratio: float = DEFAULT_MAX_LATENCY_RATIO
    latency_allowance_ms: float = DEFAULT_LATENCY_ALLOWANCE_MS
    max_recorded_mismatch: float = 0.0
    batch_size: int = 100
    top: int = 10

    def errors_within(self, candidate_rate: float, production_rate: float) -> bool:
        """The candidate fails at most ``max_error_rate`` more of the same requests than production."""
        return candidate_rate - production_rate <= self.max_error_rate

    def latency_within(self, candidate_ms: float, production_ms: float) -> bool:
        """The candidate's p95 is within ``max_latency_ratio`` of production's, or within the allowance."""
        return (candidate_ms <= production_ms * self.max_latency_ratio
                or candidate_ms - production_ms <= self.latency_allowance_ms)


def parse_shadow(table: dict[str, Any], release: Release, stage: Stage) -> ShadowConfig:
    """Check ``[shadow]``; a bad value is a ConfigError naming the key and the fix."""
    file = release.manifest
    values = check(table, SHADOW, file, "shadow.")
    assert release.data is not None
    regression = release.data.task == "regression"
    for key in (("max_changed_per_segment",) if regression else
                ("max_mean_abs_change", "max_mean_abs_change_per_segment")):
        if key in table:
            raise ConfigError(file, f"shadow.{key}", f"does not apply to a {release.data.task}",
                              "a classification bounds max_changed, a regression max_mean_abs_change")
    segment = values["segment"]
    if segment is not None and segment not in release.data.features:
        raise ConfigError(file, "shadow.segment", f"{segment!r} is not one of data.features",
                          "name one of: " + ", ".join(release.data.features))
    per_segment = values["max_mean_abs_change_per_segment" if regression else "max_changed_per_segment"]
    if per_segment is not None and segment is None:
        raise ConfigError(file, "shadow.segment", "a per-segment bound is set but no segment feature",
                          'name the feature to split by, e.g. segment = "' + release.data.features[0] + '"')
    def number(key: str) -> float | None:
        return float(values[key]) if values[key] is not None else None

    return ShadowConfig(
        max_changed=float(values["max_changed"]), max_mean_abs_change=number("max_mean_abs_change"), segment=segment,
        segments=values["segments"], max_changed_per_segment=number("max_changed_per_segment"),
        max_mean_abs_change_per_segment=number("max_mean_abs_change_per_segment"),
        min_segment_rows=values["min_segment_rows"], max_error_rate=float(values["max_error_rate"]),
        max_latency_ratio=float(values["max_latency_ratio"]),
        latency_allowance_ms=float(values["latency_allowance_ms"]),
        max_recorded_mismatch=float(values["max_recorded_mismatch"]), batch_size=values["batch_size"],
        top=values["top"])
