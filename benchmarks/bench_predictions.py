"""Size and time of keeping a release's per-row holdout predictions in history, and of the
paired comparison with production, at holdout sizes up to 200,000 rows.

    python benchmarks/bench_predictions.py [--rows 200000] [--repeat 5]

Per task (3-class and 20-class classification, regression): the stored file's size against the
same predictions as JSON (what a verdict field would cost) and as float64, and the median CPU
time of this process (``time.process_time``: on a box shared with other jobs wall time mostly
measures the neighbours) of encoding the served answers, saving, loading, the holdout digest (4
float features) and the whole comparison (test and deltas).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from releasetest.checks.acceptance.paired import ComparisonSettings, compare
from releasetest.verdict.predictions import (
    Predictions,
    holdout_digest,
    load_predictions,
    predictions_path,
    save_predictions,
)
from releasetest.verdict.production import Production

PROD = Production("sha256:" + "a" * 64, "production", "benchmark")


def median_ms(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times) * 1000


def case(name: str, task: str, labels: list[Any], prod: list[Any], cand: list[Any], classes: tuple[Any, ...],
         digest: str, folder: Path, repeat: int) -> None:
    stored = Predictions.encode(PROD.release_id, digest, task, prod, classes)
    encode_ms = median_ms(lambda: Predictions.encode(PROD.release_id, digest, task, prod, classes), repeat)
    candidate = Predictions.encode("sha256:" + "c" * 64, digest, task, cand, classes)
    save_ms = median_ms(lambda: save_predictions(folder, stored), repeat)
    path = predictions_path(folder, stored.release_id, digest)
    load_ms = median_ms(lambda: load_predictions(folder, stored.release_id, digest), repeat)
    compare_ms = median_ms(lambda: compare(candidate, labels, PROD, stored, {}, ComparisonSettings()), repeat)
    as_json = len(json.dumps(prod).encode())
    as_f64 = folder / "f64.npz"
    np.savez_compressed(as_f64, values=np.asarray(prod, dtype=np.float64))
    result = compare(candidate, labels, PROD, stored, {}, ComparisonSettings())
    assert result.test is not None
    p = f"{result.test.p_value:.3g}" if result.test.p_value > 0 else "< 1e-300"
    print(f"{name:<20} {path.stat().st_size / 1000:>8.1f} kB {as_json / 1000:>8.1f} kB "
          f"{as_f64.stat().st_size / 1000:>8.1f} kB {encode_ms:>9.1f} {save_ms:>7.1f} {load_ms:>7.1f} "
          f"{compare_ms:>10.1f}   p {p}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n = args.rows
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(n, 4))
    digest_ms = median_ms(lambda: holdout_digest(("a", "b", "c", "d"), rows, list(range(n))), args.repeat)
    print(f"{n} rows; CPU ms, median of {args.repeat}; holdout digest (4 features): {digest_ms:.1f} ms")
    print(f"{'case':<20} {'stored':>11} {'as JSON':>11} {'float64':>11} {'encode ms':>9} {'save ms':>7} "
          f"{'load ms':>7} {'compare ms':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for k in (3, 20):
            classes = tuple(range(k))
            labels = rng.integers(0, k, n).tolist()
            flip = rng.random(n)
            prod = [y if f > 0.04 else (y + 1) % k for y, f in zip(labels, flip, strict=True)]
            cand = [y if f > 0.09 else (y + 1) % k for y, f in zip(labels, flip, strict=True)]
            case(f"classification {k}", "classification", labels, prod, cand, classes,
                 f"sha256:{k:064d}", folder, args.repeat)
        truth = rng.normal(150, 70, n)
        prod_r = (truth + rng.normal(0, 40, n)).tolist()
        cand_r = (truth + rng.normal(0, 41, n)).tolist()
        case("regression", "regression", truth.tolist(), prod_r, cand_r, (), "sha256:" + "1" * 64, folder,
             args.repeat)


if __name__ == "__main__":
    main()
