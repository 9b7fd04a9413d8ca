"""The drift suite's two decisions from three samples: the training reference, the holdout and
the recorded production inputs.

- *stale holdout*: the holdout against production; when a feature drifted, the acceptance
  evidence was gathered on rows unlike production's (BLOCK or warn, ``[drift] stale_holdout``);
- *far from training*: the training reference against production; when a feature drifted, the
  candidate was trained on data unlike what it will serve (``[drift] far_from_training``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from releasetest.checks.drift.config import DriftConfig
from releasetest.checks.drift.findings import DriftFindings, FeatureRecord
from releasetest.checks.drift.profile import load_reference
from releasetest.checks.drift.stats import P_VALUES, FeatureDrift, FeatureSample, compare, sturges_bins
from releasetest.release.data import Holdout
from releasetest.release.traffic import Traffic

#: Short metric names for the small multiples' captions (the tables spell them out).
SHORT = {"jensen_shannon_distance": "JS distance", "normalized_wasserstein_distance": "norm. Wasserstein",
         "population_stability_index": "PSI", "two_sample_kolmogorov_smirnov_test": "KS p-value",
         "pearsons_chi_squared_test": "chi-squared p-value"}


def _op(d: FeatureDrift) -> str:
    """How the value compares with its threshold, in the direction that drifts."""
    if d.metric in P_VALUES:
        return "<" if d.drifted else "≥"
    return ">" if d.drifted else "≤"


def _record(d: FeatureDrift) -> FeatureRecord:
    return FeatureRecord(feature=d.feature, kind=d.kind, metric=d.metric, value=d.value, threshold=d.threshold,
                         drifted=d.drifted, below=d.metric in P_VALUES, metrics=dict(d.metrics),
                         n_reference=d.n_reference, n_production=d.n_production)


def _values(sample: FeatureSample) -> np.ndarray:
    return sample.as_kind("numerical").values if sample.kind == "categorical" else sample.values  # type: ignore[return-value]


def side_by_side(samples: dict[str, FeatureSample]) -> dict[str, Any]:
    """The samples of one feature (reference, holdout, production) as shares on shared bins:
    equal-width over their joint range (Sturges on the smallest), or the union of categories."""
    first = next(iter(samples.values()))
    if first.kind == "categorical":
        cats = sorted({c for s in samples.values() for c in s.as_kind("categorical").counts},
                      key=lambda c: (isinstance(c, str), c))
        shares = {}
        for name, s in samples.items():
            counts = s.as_kind("categorical").counts
            total = sum(counts.values()) or 1
            shares[name] = [counts.get(c, 0) / total for c in cats]
        return {"kind": "categorical", "bins": [str(c) for c in cats], "shares": shares}
    values = {name: _values(s) for name, s in samples.items()}
    lo = min(float(v.min()) for v in values.values())
    hi = max(float(v.max()) for v in values.values())
    n = min(len(v) for v in values.values())
    edges = np.linspace(lo, hi if hi > lo else lo + 1e-9, sturges_bins(n, n) + 1)
    shares = {name: (np.histogram(v, bins=edges)[0] / max(1, len(v))).tolist() for name, v in values.items()}
    return {"kind": "numerical", "bins": [f"{e:.4g}" for e in edges.tolist()], "shares": shares}


@dataclass(frozen=True)
class DriftEvaluation:
    config: DriftConfig
    holdout: list[FeatureDrift]
    training: list[FeatureDrift] | None
    distributions: list[dict[str, Any]]
    production: dict[str, Any]

    def findings(self) -> DriftFindings:
        return DriftFindings(
            production=self.production,
            reference=str(self.config.reference) if self.config.reference else None,
            stale_holdout=self.config.stale_holdout, far_from_training=self.config.far_from_training,
            holdout_vs_production=[_record(d) for d in self.holdout],
            training_vs_production=[_record(d) for d in self.training] if self.training is not None else None,
            distributions=self.distributions)


def evaluate(config: DriftConfig, holdout: Holdout, traffic: Traffic) -> DriftEvaluation:
    """Compare the holdout, and the training reference if there is one, with production."""
    features = traffic.features
    production = {f: traffic.column(f) for f in features}
    reference = load_reference(config.reference, features) if config.reference is not None else None
    kinds = {s.name: s.kind for s in reference} if reference else {}
    held = [FeatureSample.of(f, holdout.rows[:, j].astype(np.float64), kinds.get(f)) for j, f in enumerate(features)]
    on_holdout = compare(held, production, config.thresholds)
    on_training = compare(reference, production, config.thresholds) if reference is not None else None
    by_name = {d.feature: d for d in on_holdout}
    worst = {f: max([by_name[f].metrics["jensen_shannon_distance"],
                     *(d.metrics["jensen_shannon_distance"] for d in on_training or () if d.feature == f)])
             for f in features}
    distributions = []
    for f in sorted(features, key=lambda name: -worst[name]):
        j = features.index(f)
        samples = {}
        if reference is not None:
            samples["training"] = next(s for s in reference if s.name == f)
        samples["holdout"] = held[j]
        samples["production"] = FeatureSample.of(f, production[f], held[j].kind)
        view = side_by_side(samples)
        gating = [d for d in (by_name[f], *(x for x in on_training or () if x.feature == f))]
        view.update(feature=f, drifted=any(d.drifted for d in gating),
                    lines=[f"{who}: {SHORT[d.metric]} {d.value:.3g} {_op(d)} {d.threshold:g}"
                           for who, d in zip(("holdout", "training"), gating, strict=False)])
        distributions.append(view)
    summary = {"rows": len(traffic), "recorded_rows": traffic.total, "files": len(traffic.files),
               "formats": sorted(set(traffic.formats))}
    return DriftEvaluation(config, on_holdout, on_training, distributions, summary)
