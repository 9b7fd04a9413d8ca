"""Drift metrics (releasetest.checks.drift.stats) against hand-computed and scipy reference values,
and the reference profile (releasetest.checks.drift.profile). In-process, no endpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from releasetest.checks.drift.profile import (
    FORMAT,
    load_profile,
    load_reference,
    profile,
    profile_csv,
    write_profile,
)
from releasetest.checks.drift.stats import (
    FeatureSample,
    compare,
    compare_feature,
    histogram,
    infer_kind,
    jensen_shannon_distance,
    kolmogorov_smirnov,
    normalized_wasserstein_distance,
    pearsons_chi_squared,
    population_stability_index,
    shared_edges,
    sturges_bins,
)
from releasetest.errors import ConfigError

from .conftest import EXAMPLE


def test_jensen_shannon_distance_by_hand() -> None:
    assert jensen_shannon_distance(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1.0)
    assert jensen_shannon_distance(np.array([5, 5]), np.array([7, 7])) == pytest.approx(0.0, abs=1e-12)
    # m = (0.75, 0.25): H(m) - (H(p) + H(q)) / 2 = 0.811278 - 0.5, base 2; the distance is its root
    expected = math.sqrt(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)) - 0.5)
    assert jensen_shannon_distance(np.array([2, 2]), np.array([9, 0])) == pytest.approx(expected)


def test_population_stability_index_by_hand_with_plus_one_smoothing() -> None:
    # (1+1, 3+1)/6 against (3+1, 1+1)/6: 2 * (1/3) * ln 2
    assert population_stability_index(np.array([1, 3]), np.array([3, 1])) == pytest.approx(2 / 3 * math.log(2))
    assert math.isfinite(population_stability_index(np.array([10, 0]), np.array([0, 10])))


def test_normalized_wasserstein_by_hand_and_its_floor() -> None:
    # W1([0, 2], [1, 3]) = 1; the reference's sample standard deviation is sqrt(2)
    got = normalized_wasserstein_distance(np.array([0.0, 2.0]), np.array([1.0, 3.0]))
    assert got == pytest.approx(1 / math.sqrt(2))
    # a constant reference divides by 0.001, not by zero
    assert normalized_wasserstein_distance(np.array([5.0, 5.0]), np.array([5.0, 6.0])) == pytest.approx(500.0)


def test_kolmogorov_smirnov_is_scipys_two_sample_test() -> None:
    statistic, p = kolmogorov_smirnov(np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0]))
    assert statistic == 1.0 and p == pytest.approx(2 / 20)  # exact: 2 of C(6, 3) orderings are this extreme
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=3000), rng.normal(0.1, size=2000)
    assert kolmogorov_smirnov(a, b) == pytest.approx(tuple(scipy_stats.ks_2samp(a, b)))


def test_pearsons_chi_squared_by_hand() -> None:
    statistic, p = pearsons_chi_squared(np.array([50, 50]), np.array([30, 70]))
    assert statistic == pytest.approx(16.0)  # (20^2 + 20^2) / 50
    assert p == pytest.approx(scipy_stats.chi2.sf(16.0, 1))
    assert pearsons_chi_squared(np.array([10, 0]), np.array([5, 1])) == (math.inf, 0.0)  # a category never seen
    assert pearsons_chi_squared(np.array([10, 0]), np.array([4, 0])) == (0.0, 1.0)


def test_bins_are_sturges_over_the_joint_range() -> None:
    assert sturges_bins(1000, 5000) == 11  # ceil(log2(1000) + 1)
    edges = shared_edges(np.array([0.0, 4.0]), np.array([10.0, 2.0]))
    assert edges.tolist() == [0.0, 5.0, 10.0]
    assert histogram(np.array([0.0, 5.0, 10.0, 10.0]), edges).tolist() == [1, 3]  # last bin closed
    assert len(shared_edges(np.array([3.0, 3.0]), np.array([3.0]))) == 2


def test_kind_inference() -> None:
    assert infer_kind(np.array([0.0, 1.0, 1.0])) == "categorical"
    assert infer_kind(np.arange(360.0)) == "numerical"
    assert infer_kind(np.array([0.5, 1.0])) == "numerical"


def _normal(mean: float, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, 1.0, n)


def test_a_shifted_numerical_feature_drifts_and_a_same_distribution_one_does_not() -> None:
    reference = FeatureSample.of("x", _normal(0.0, 20000, 1))
    same = compare_feature(reference, FeatureSample.of("x", _normal(0.0, 20000, 2)))
    moved = compare_feature(reference, FeatureSample.of("x", _normal(0.5, 20000, 3)))
    assert same.metric == "normalized_wasserstein_distance" and same.threshold == 0.1
    assert not same.drifted and same.value < 0.03
    assert moved.drifted and moved.value == pytest.approx(0.5, abs=0.03)
    assert "x (numerical): normalized_wasserstein_distance 0.5" in moved.describe()
    assert "> threshold 0.1" in moved.describe()
    assert moved.metrics["jensen_shannon_distance"] > same.metrics["jensen_shannon_distance"]
    assert moved.metrics["population_stability_index"] > 0.1 > same.metrics["population_stability_index"]


def test_p_value_metrics_drift_below_their_threshold() -> None:
    reference = FeatureSample.of("x", _normal(0.0, 5000, 1))
    same = compare_feature(reference, FeatureSample.of("x", _normal(0.0, 5000, 2)),
                           "two_sample_kolmogorov_smirnov_test", 0.01)
    moved = compare_feature(reference, FeatureSample.of("x", _normal(0.2, 5000, 3)),
                            "two_sample_kolmogorov_smirnov_test", 0.01)
    assert not same.drifted and moved.drifted and moved.statistic is not None
    assert "< threshold 0.01" in moved.describe()


def test_a_categorical_feature_drifts_on_its_shares() -> None:
    rng = np.random.default_rng(5)
    reference = FeatureSample.of("c", (rng.random(20000) < 0.9).astype(float))
    assert reference.kind == "categorical" and reference.counts.keys() == {0.0, 1.0}
    same = compare_feature(reference, FeatureSample.of("c", (rng.random(5000) < 0.9).astype(float)))
    moved = compare_feature(reference, FeatureSample.of("c", (rng.random(5000) < 0.5).astype(float)))
    assert same.metric == "jensen_shannon_distance" and not same.drifted
    assert moved.drifted and moved.bins == [0.0, 1.0]
    assert moved.production_share == pytest.approx([0.5, 0.5], abs=0.03)
    assert moved.metrics["pearsons_chi_squared_test"] < 1e-6 < same.metrics["pearsons_chi_squared_test"]


def test_a_sample_read_as_the_other_kind_is_compared_as_the_reference_reads_it() -> None:
    as_categories = FeatureSample.of("c", np.array([0.0, 0.0, 1.0, 1.0]), "categorical")
    as_numbers = FeatureSample.of("c", np.array([0.0, 1.0, 1.0, 1.0]), "numerical")
    categorical = compare_feature(as_categories, as_numbers)
    assert categorical.kind == "categorical" and categorical.production_share == [0.25, 0.75]
    numerical = compare_feature(as_numbers, as_categories)
    assert numerical.kind == "numerical"
    assert numerical.metrics["normalized_wasserstein_distance"] == pytest.approx(0.25 / 0.5)  # W1 0.25, std 0.5


def test_compare_names_the_drifted_feature_first_and_honours_per_feature_thresholds() -> None:
    reference = [FeatureSample.of("steady", _normal(0, 5000, 1)), FeatureSample.of("moved", _normal(0, 5000, 2))]
    production = {"steady": _normal(0, 5000, 3), "moved": _normal(1, 5000, 4)}
    result = compare(reference, production)
    assert [d.feature for d in result] == ["moved", "steady"]
    assert [d.drifted for d in result] == [True, False]
    loose = compare(reference, production, {"moved": ("population_stability_index", 100.0)})
    assert loose[0].metric == "population_stability_index" and not loose[0].drifted
    with pytest.raises(ValueError, match="pearsons_chi_squared_test is not a numerical drift metric"):
        compare_feature(reference[0], reference[0], "pearsons_chi_squared_test", 0.05)


def test_profile_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    columns = {"x": rng.normal(size=5000), "flag": (rng.random(5000) < 0.3).astype(float)}
    doc = profile(columns, sample=1000)
    assert doc["format"] == FORMAT
    assert doc["features"]["x"]["kind"] == "numerical" and len(doc["features"]["x"]["values"]) == 1000
    assert doc["features"]["x"]["count"] == 5000
    assert doc["features"]["x"]["quantiles"]["0.5"] == pytest.approx(float(np.median(columns["x"])))
    flags = dict((k, c) for k, c in doc["features"]["flag"]["counts"])
    assert flags == {0.0: int((columns["flag"] == 0).sum()), 1.0: int((columns["flag"] == 1).sum())}
    write_profile(doc, tmp_path / "reference.json")
    samples = load_profile(tmp_path / "reference.json", ["flag", "x"])
    assert [s.name for s in samples] == ["flag", "x"]
    assert samples[0].counts == {0.0: flags[0.0], 1.0: flags[1.0]} and samples[1].n == 1000
    again = compare_feature(samples[1], FeatureSample.of("x", columns["x"]))
    assert not again.drifted


def test_profile_of_the_example_training_file_and_the_file_itself_agree(tmp_path: Path) -> None:
    features = ["Temperature_C", "Current_weather_condition"]
    doc = profile_csv(EXAMPLE / "data" / "weather.csv", features)
    assert doc["source"]["rows"] == 19289 and len(doc["source"]["sha256"]) == 64
    assert doc["features"]["Current_weather_condition"]["kind"] == "categorical"
    write_profile(doc, tmp_path / "reference.json")
    from_profile = load_reference(tmp_path / "reference.json", features)
    from_file = load_reference(EXAMPLE / "data" / "weather.csv", features)
    assert from_profile[1].counts == from_file[1].counts
    assert np.array_equal(from_profile[0].values, from_file[0].values)


@pytest.mark.parametrize(("content", "expected"), [
    ("not json", "cannot read the profile"),
    (json.dumps({"format": "other"}), "reference.json: format: not a releasetest profile"),
    (json.dumps({"format": FORMAT, "features": {}}), "reference.json: features: no profile for x"),
])
def test_bad_profiles_get_one_line(tmp_path: Path, content: str, expected: str) -> None:
    (tmp_path / "reference.json").write_text(content)
    with pytest.raises(ConfigError, match="fix: ") as info:
        load_profile(tmp_path / "reference.json", ["x"])
    assert expected in str(info.value)


def test_a_training_csv_with_a_bad_cell_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("x,y\n1,2\nthree,4\n")
    with pytest.raises(ConfigError, match=r"train.csv: line 3: non-numeric"):
        load_reference(tmp_path / "train.csv", ["x", "y"])
