"""Per-feature drift metrics, defined as Azure ML model monitoring computes them, with scipy.

Names, definitions and defaults follow Azure ML's own monitoring components and SDK, so a
number here means what it means in an Azure ML data drift signal (sources in docs/drift.md):

- numerical features: ``jensen_shannon_distance`` (base 2, on a shared histogram),
  ``normalized_wasserstein_distance`` (scipy's Wasserstein-1 divided by the reference's sample
  standard deviation, at least 0.001), ``population_stability_index`` (shared histogram, each
  bin's count plus one), ``two_sample_kolmogorov_smirnov_test`` (the p-value of scipy's
  ``ks_2samp``);
- categorical features: ``jensen_shannon_distance``, ``population_stability_index`` (over the
  union of categories) and ``pearsons_chi_squared_test`` (the p-value of scipy's ``chisquare``
  of production counts against the reference's shares scaled to production's size).

The shared histogram has Sturges' number of equal-width bins, ``ceil(log2(n) + 1)`` for the
smaller sample's ``n``, over the two samples' joint range. Distances drift when above their
threshold, p-values when below. Azure's defaults: ``normalized_wasserstein_distance`` 0.1 for
numerical features and ``jensen_shannon_distance`` 0.1 for categorical ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.spatial import distance
from scipy.stats import chisquare, ks_2samp, wasserstein_distance

from releasetest.checks.drift.config import CATEGORICAL_METRICS, DEFAULT_THRESHOLDS, NUMERICAL_METRICS

Kind = Literal["numerical", "categorical"]

#: Azure ML's names for the same metrics (the REST API and the studio use these).
AZURE_NAMES = {
    "jensen_shannon_distance": "JensenShannonDistance",
    "normalized_wasserstein_distance": "NormalizedWassersteinDistance",
    "population_stability_index": "PopulationStabilityIndex",
    "two_sample_kolmogorov_smirnov_test": "TwoSampleKolmogorovSmirnovTest",
    "pearsons_chi_squared_test": "PearsonsChiSquaredTest",
}
#: Metrics that are p-values: drift is a value *below* the threshold.
P_VALUES = frozenset({"two_sample_kolmogorov_smirnov_test", "pearsons_chi_squared_test"})
#: The smallest standard deviation the Wasserstein distance is divided by (Azure's floor).
MIN_NORM = 0.001
#: A feature of whole numbers with at most this many distinct values is taken as categorical.
MAX_CATEGORIES = 20


def sturges_bins(n_reference: int, n_production: int) -> int:
    """Azure's bin count: Sturges' rule on the smaller sample."""
    return max(1, math.ceil(math.log2(max(1, min(n_reference, n_production))) + 1))


def shared_edges(reference: np.ndarray, production: np.ndarray) -> np.ndarray:
    """Equal-width bin edges over both samples' range (one bin when every value is the same)."""
    lo = float(min(reference.min(), production.min()))
    hi = float(max(reference.max(), production.max()))
    if lo == hi:
        return np.array([lo, lo + max(abs(lo) * 0.01, 1e-9)])
    return np.linspace(lo, hi, sturges_bins(len(reference), len(production)) + 1)


def histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin, the last bin closed on the right (as Spark's ``rdd.histogram``)."""
    return np.histogram(values, bins=edges)[0]


def jensen_shannon_distance(reference_counts: np.ndarray, production_counts: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two histograms on the same bins."""
    p = np.asarray(reference_counts, dtype=np.float64)
    q = np.asarray(production_counts, dtype=np.float64)
    return float(distance.jensenshannon(p / p.sum(), q / q.sum(), base=2))


def population_stability_index(reference_counts: np.ndarray, production_counts: np.ndarray) -> float:
    """PSI with every bin's count plus one (Laplace smoothing), so an empty bin stays finite."""
    p = np.asarray(reference_counts, dtype=np.float64) + 1
    q = np.asarray(production_counts, dtype=np.float64) + 1
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum((q - p) * np.log(q / p)))


def normalized_wasserstein_distance(reference: np.ndarray, production: np.ndarray) -> float:
    """Wasserstein-1 distance in units of the reference's standard deviation (ddof 1, as Spark's
    ``stddev``), floored at :data:`MIN_NORM`."""
    std = float(np.std(reference, ddof=1)) if len(reference) > 1 else 0.0
    return float(wasserstein_distance(reference, production)) / max(std, MIN_NORM)


def kolmogorov_smirnov(reference: np.ndarray, production: np.ndarray) -> tuple[float, float]:
    """(statistic, p-value) of the two-sample Kolmogorov-Smirnov test."""
    result = ks_2samp(reference, production)
    return float(result.statistic), float(result.pvalue)


def pearsons_chi_squared(reference_counts: np.ndarray, production_counts: np.ndarray) -> tuple[float, float]:
    """(statistic, p-value) of production's counts against the reference's shares.

    A category production has and the reference never saw has an expected count of zero: the
    statistic is infinite and the p-value 0 (scipy would warn and divide by zero). Fewer than two
    categories leave nothing to test: p-value 1.
    """
    ref = np.asarray(reference_counts, dtype=np.float64)
    obs = np.asarray(production_counts, dtype=np.float64)
    expected = ref / ref.sum() * obs.sum()
    if np.any((expected == 0) & (obs > 0)):
        return math.inf, 0.0
    seen = expected > 0
    if seen.sum() < 2:
        return 0.0, 1.0
    result = chisquare(obs[seen], expected[seen])
    return float(result.statistic), float(result.pvalue)


def category_key(value: Any) -> Any:
    """One key per category whatever its spelling: ``"1"``, ``1`` and ``1.0`` are the same."""
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return number if math.isfinite(number) else str(value)


def infer_kind(values: np.ndarray) -> Kind:
    """Categorical for whole numbers with few distinct values (0/1 flags, codes), else numerical."""
    finite = values[np.isfinite(values)]
    if len(finite) and np.all(finite == np.round(finite)) and len(np.unique(finite)) <= MAX_CATEGORIES:
        return "categorical"
    return "numerical"


@dataclass(frozen=True)
class FeatureSample:
    """One feature of one sample: its values (numerical) or its category counts (categorical)."""

    name: str
    kind: Kind
    values: np.ndarray | None = None
    counts: Mapping[Any, int] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.values) if self.values is not None else int(sum(self.counts.values()))

    @classmethod
    def of(cls, name: str, values: np.ndarray, kind: Kind | None = None) -> FeatureSample:
        """From raw values; NaNs are dropped (their share is a data quality matter, not drift)."""
        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values)]
        kind = kind or infer_kind(values)
        if kind == "numerical":
            return cls(name, kind, values=values)
        keys, counts = np.unique(values, return_counts=True)
        return cls(name, kind, counts={category_key(k): int(c) for k, c in zip(keys, counts, strict=True)})

    def as_kind(self, kind: Kind) -> FeatureSample:
        """The same sample read as ``kind`` (a numerical reference compared as categories)."""
        if kind == self.kind:
            return self
        if kind == "categorical" and self.values is not None:
            return FeatureSample.of(self.name, self.values, "categorical")
        values = np.repeat(np.array([float(k) for k in self.counts], dtype=np.float64),
                           np.array(list(self.counts.values()), dtype=np.int64))
        return FeatureSample(self.name, "numerical", values=values)


@dataclass(frozen=True)
class FeatureDrift:
    """Every metric for one feature, the one that gates and its threshold, and the two
    distributions on shared bins (for the report's small multiples)."""

    feature: str
    kind: Kind
    metrics: dict[str, float]
    metric: str
    threshold: float
    #: Bin edges (numerical) or category labels (categorical), and each sample's share per bin.
    bins: list[Any]
    reference_share: list[float]
    production_share: list[float]
    n_reference: int
    n_production: int
    #: The KS or chi-squared statistic behind the p-value.
    statistic: float | None = None

    @property
    def value(self) -> float:
        return self.metrics[self.metric]

    @property
    def drifted(self) -> bool:
        return self.value < self.threshold if self.metric in P_VALUES else self.value > self.threshold

    def describe(self) -> str:
        op = "<" if self.metric in P_VALUES else ">"
        verdict = f"{op} threshold" if self.drifted else "within threshold"
        return (f"{self.feature} ({self.kind}): {self.metric} {self.value:.4g} {verdict} {self.threshold:g} "
                f"({self.n_reference} reference rows, {self.n_production} production rows)")


def _shares(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return (counts / total).tolist() if total else [0.0] * len(counts)


def compare_feature(reference: FeatureSample, production: FeatureSample, metric: str | None = None,
                    threshold: float | None = None) -> FeatureDrift:
    """All of the feature kind's metrics; ``metric``/``threshold`` gate (Azure's default otherwise)."""
    kind = reference.kind
    production = production.as_kind(kind)
    default_metric, default_threshold = DEFAULT_THRESHOLDS[kind]
    metric = metric or default_metric
    allowed = NUMERICAL_METRICS if kind == "numerical" else CATEGORICAL_METRICS
    if metric not in allowed:
        raise ValueError(f"{metric} is not a {kind} drift metric: choose one of {', '.join(allowed)}")
    if reference.n == 0 or production.n == 0:
        raise ValueError(f"{reference.name}: no values to compare ({reference.n} reference, {production.n} production)")
    statistic: float | None
    if kind == "numerical":
        ref, prod = reference.values, production.values
        assert ref is not None and prod is not None
        edges = shared_edges(ref, prod)
        rc, pc = histogram(ref, edges), histogram(prod, edges)
        ks_stat, ks_p = kolmogorov_smirnov(ref, prod)
        metrics = {
            "jensen_shannon_distance": jensen_shannon_distance(rc, pc),
            "normalized_wasserstein_distance": normalized_wasserstein_distance(ref, prod),
            "population_stability_index": population_stability_index(rc, pc),
            "two_sample_kolmogorov_smirnov_test": ks_p,
        }
        bins: list[Any] = edges.tolist()
        statistic = ks_stat if metric == "two_sample_kolmogorov_smirnov_test" else None
    else:
        cats = sorted(set(reference.counts) | set(production.counts), key=lambda c: (isinstance(c, str), c))
        rc = np.array([reference.counts.get(c, 0) for c in cats], dtype=np.float64)
        pc = np.array([production.counts.get(c, 0) for c in cats], dtype=np.float64)
        chi_stat, chi_p = pearsons_chi_squared(rc, pc)
        metrics = {
            "jensen_shannon_distance": jensen_shannon_distance(rc, pc),
            "population_stability_index": population_stability_index(rc, pc),
            "pearsons_chi_squared_test": chi_p,
        }
        bins = cats
        statistic = chi_stat if metric == "pearsons_chi_squared_test" else None
    return FeatureDrift(
        feature=reference.name, kind=kind, metrics=metrics, metric=metric,
        threshold=default_threshold if threshold is None else threshold,
        bins=bins, reference_share=_shares(rc), production_share=_shares(pc),
        n_reference=reference.n, n_production=production.n, statistic=statistic,
    )


def compare(reference: Sequence[FeatureSample], production: Mapping[str, np.ndarray],
            thresholds: Mapping[str, tuple[str, float]] | None = None) -> list[FeatureDrift]:
    """Each reference feature against production's values, most drifted first (by Jensen-Shannon
    distance, the one metric every feature has on the same [0, 1] scale).

    ``thresholds`` maps a feature name or a kind (``numerical``/``categorical``) to
    ``(metric, threshold)``; a feature's own entry wins.
    """
    thresholds = thresholds or {}
    out = []
    for ref in reference:
        metric, threshold = thresholds.get(ref.name) or thresholds.get(ref.kind) or DEFAULT_THRESHOLDS[ref.kind]
        prod = FeatureSample.of(ref.name, production[ref.name], ref.kind)
        out.append(compare_feature(ref, prod, metric, threshold))
    return sorted(out, key=lambda d: (-d.metrics["jensen_shannon_distance"], d.feature))
