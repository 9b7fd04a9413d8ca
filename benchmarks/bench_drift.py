"""How long the drift statistics and the traffic reader take on 200,000-row samples.

    python benchmarks/bench_drift.py [--rows 200000] [--repeat 3]

Prints, as medians of --repeat runs: each metric alone on one numerical feature and on one
categorical feature, ``compare`` over seven features (six numerical, one categorical, the
port-weather shape) with every metric computed, reading the same number of rows of data collector
JSON lines (one event of 20 rows per line) with the default 20,000-row sample, and the import
cost of the scipy modules the metrics use (a fresh interpreter each time). Times are CPU seconds
of the process (``time.process_time``), so other work on a shared machine does not inflate them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from releasetest.checks.drift.stats import (
    FeatureSample,
    compare,
    histogram,
    jensen_shannon_distance,
    kolmogorov_smirnov,
    normalized_wasserstein_distance,
    pearsons_chi_squared,
    population_stability_index,
    shared_edges,
)
from releasetest.release.traffic import read_traffic

FEATURES = [f"x{i}" for i in range(6)] + ["flag"]


def median_seconds(fn: Callable[[], Any], repeat: int) -> float:
    """CPU seconds of this process: on a shared machine wall time measures the neighbours too."""
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times)


def columns(n: int, shift: float, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {f: rng.normal(shift, 1.0, n) for f in FEATURES[:-1]}
    out["flag"] = (rng.random(n) < 0.9 - shift / 10).astype(np.float64)
    return out


def write_collector(folder: Path, data: dict[str, np.ndarray], per_request: int = 20) -> None:
    n = len(data[FEATURES[0]])
    hour = folder / "ep" / "blue" / "model_inputs" / "2026" / "11" / "30" / "14"
    hour.mkdir(parents=True)
    with (hour / "bench.jsonl").open("w") as fh:
        for start in range(0, n, per_request):
            records = [{f: float(data[f][i]) for f in FEATURES} for i in range(start, min(n, start + per_request))]
            fh.write(json.dumps({"specversion": "1.0", "type": "azureml.inference.inputs",
                                 "time": f"2026-11-30T14:{(start // per_request) % 60:02d}:00Z", "data": records,
                                 "correlationid": f"c{start}"}) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n, r = args.rows, args.repeat
    ref, prod = columns(n, 0.0, 1), columns(n, 0.2, 2)
    a, b = ref["x0"], prod["x0"]
    edges = shared_edges(a, b)
    ca, cb = histogram(a, edges), histogram(b, edges)
    flags_a = np.bincount(ref["flag"].astype(int)), np.bincount(prod["flag"].astype(int))
    print(f"{n} reference rows, {n} production rows; medians of {r} runs")
    rows = [
        ("shared bins + two histograms (numerical)", lambda: (histogram(a, shared_edges(a, b)), histogram(b, edges))),
        ("jensen_shannon_distance (on the histograms)", lambda: jensen_shannon_distance(ca, cb)),
        ("population_stability_index (on the histograms)", lambda: population_stability_index(ca, cb)),
        ("normalized_wasserstein_distance", lambda: normalized_wasserstein_distance(a, b)),
        ("two_sample_kolmogorov_smirnov_test", lambda: kolmogorov_smirnov(a, b)),
        ("categorical counts (np.unique)", lambda: FeatureSample.of("flag", prod["flag"], "categorical")),
        ("pearsons_chi_squared_test (on the counts)", lambda: pearsons_chi_squared(*flags_a)),
    ]
    for name, fn in rows:
        print(f"  {name:<50} {median_seconds(fn, r) * 1000:8.1f} ms")
    reference = [FeatureSample.of(f, ref[f]) for f in FEATURES]
    total = median_seconds(lambda: compare(reference, prod), r)
    print(f"  {'compare(): 7 features, every metric':<50} {total * 1000:8.1f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        write_collector(Path(tmp), prod)
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*.jsonl"))
        read = median_seconds(lambda: read_traffic(tmp, FEATURES), r)
        label = f"read_traffic: {n} rows, {size / 1e6:.0f} MB of JSON lines, sample 20000"
        print(f"  {label:<50} {read * 1000:8.1f} ms")
    code = ("import time; t=time.process_time(); import scipy.stats, scipy.spatial.distance; "
            "print(time.process_time()-t)")
    imports = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
               for _ in range(r)]
    print(f"  {'import scipy.stats, scipy.spatial.distance':<50} {statistics.median(imports) * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
