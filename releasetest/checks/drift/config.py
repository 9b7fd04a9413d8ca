"""The ``[drift]`` manifest table: the training reference, the gating metric and threshold per
feature kind or feature, and what a stale holdout does (BLOCK or warn)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from releasetest.errors import ConfigError
from releasetest.release.manifest import Release, Stage
from releasetest.tables import Key, Table, check, check_table

#: Metric names as Azure ML model monitoring spells them in its SDK (snake case); kept here so
#: parsing a manifest does not import scipy (the stats module does).
NUMERICAL_METRICS = ("jensen_shannon_distance", "normalized_wasserstein_distance", "population_stability_index",
                     "two_sample_kolmogorov_smirnov_test")
CATEGORICAL_METRICS = ("jensen_shannon_distance", "population_stability_index", "pearsons_chi_squared_test")
#: Azure ML's default data drift thresholds (azure-ai-ml ``DataDriftMetricThreshold``).
DEFAULT_THRESHOLDS: dict[str, tuple[str, float]] = {
    "numerical": ("normalized_wasserstein_distance", 0.1),
    "categorical": ("jensen_shannon_distance", 0.1),
}
ACTIONS = ("block", "warn")
#: A stale holdout weakens the acceptance evidence; it does not show the candidate is worse, so
#: by default the verdict says so and the gate still decides on the other checks.
DEFAULT_STALE_HOLDOUT = "warn"
#: A candidate trained on data far from production is a finding about the model itself.
DEFAULT_FAR_FROM_TRAINING = "block"


def _metric_table(metrics: tuple[str, ...], kind: str) -> Table:
    metric, threshold = DEFAULT_THRESHOLDS[kind]
    return Table({
        "metric": Key("str", f"the {kind} drift metric that gates", default=metric, choices=metrics),
        "threshold": Key("number", "distances drift above it, p-values below it", default=threshold, ge=0),
    }, f'write {kind} = {{ metric = "{metric}", threshold = {threshold:g} }}')


FEATURE = Table({
    "metric": Key("str", "the drift metric that gates this feature", required=True,
                  choices=tuple(dict.fromkeys(NUMERICAL_METRICS + CATEGORICAL_METRICS))),
    "threshold": Key("number", "distances drift above it, p-values below it", required=True, ge=0),
}, 'write features = { Pressure_millibars = { metric = "jensen_shannon_distance", threshold = 0.2 } }')

DRIFT = Table({
    "reference": Key("str", "the training data's profile (releasetest profile TRAIN.csv --out reference.json) "
                     "or the training CSV itself, relative to the manifest", ge=1, example="data/reference.json"),
    "numerical": _metric_table(NUMERICAL_METRICS, "numerical"),
    "categorical": _metric_table(CATEGORICAL_METRICS, "categorical"),
    "features": Key("mapping", "feature = { metric = ..., threshold = ... } lines for features gated on their own"),
    "stale_holdout": Key("str", "what a holdout far from production does", default=DEFAULT_STALE_HOLDOUT,
                         choices=ACTIONS),
    "far_from_training": Key("str", "what a candidate trained on data far from production does",
                             default=DEFAULT_FAR_FROM_TRAINING, choices=ACTIONS),
})


@dataclass(frozen=True)
class DriftConfig:
    #: The training reference (profile JSON or CSV); None: only the holdout is compared.
    reference: Path | None = None
    #: ``numerical`` / ``categorical`` / a feature name -> (metric, threshold); a feature's own wins.
    thresholds: dict[str, tuple[str, float]] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    stale_holdout: str = DEFAULT_STALE_HOLDOUT
    far_from_training: str = DEFAULT_FAR_FROM_TRAINING

    def describe(self) -> dict[str, Any]:
        return {"reference": str(self.reference) if self.reference else None,
                "thresholds": {k: {"metric": m, "threshold": t} for k, (m, t) in self.thresholds.items()},
                "stale_holdout": self.stale_holdout, "far_from_training": self.far_from_training}


def parse_drift(table: dict[str, Any], release: Release, stage: Stage) -> DriftConfig:
    """Check ``[drift]``; a bad value is a ConfigError naming the key and the fix."""
    file = release.manifest
    values = check(table, DRIFT, file, "drift.")
    reference = None
    if values["reference"] is not None:
        reference = (release.root / values["reference"]).resolve()
        if not reference.is_file():
            raise ConfigError(file, "drift.reference", f"file not found: {reference}",
                              "write it with: releasetest profile TRAIN.csv --out reference.json, or name the "
                              "training CSV")
    thresholds = {kind: (values[kind]["metric"], float(values[kind]["threshold"])) for kind in DEFAULT_THRESHOLDS}
    features = release.data.features if release.data else ()
    for name, spec in (values["features"] or {}).items():
        if name not in features:
            raise ConfigError(file, f"drift.features.{name}", "is not one of data.features",
                              "name one of: " + ", ".join(features))
        entry = check_table(spec, FEATURE, file, f"drift.features.{name}")
        thresholds[name] = (entry["metric"], float(entry["threshold"]))
    return DriftConfig(reference, thresholds, values["stale_holdout"], values["far_from_training"])
