"""Holdout rows/s through the local endpoint vs in-process scoring of the same rows, in one run.

In-process: the release's score.py imported here with AZUREML_MODEL_DIR laid out as the local
target lays it out (<dir>/<name>/<version>/<file>), init() once, then run() on the same batches.
Through the endpoint: releasetest.checks.acceptance.scoring.score_rows, as the acceptance suite scores.

    python benchmarks/bench_acceptance.py [--manifest examples/port-weather/release.toml] [--repeat 7]

Prints one line per (batch size, concurrency) with the median of --repeat runs and the ratio, and
the single-worker ceiling: in-process rows/s over the rows/s of the least work one server worker
must do (JSON in, run() on lists, JSON out), which no endpoint with one worker can beat.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from releasetest.checks.acceptance.scoring import score_rows
from releasetest.endpoint.local import LocalEndpoint
from releasetest.release.data import load_holdout
from releasetest.release.manifest import Release, load_release

ROOT = Path(__file__).resolve().parent.parent


def in_process_scorer(release: Release, model_dir: Path) -> Any:
    """The release's entry script, imported and initialised the way the server does it."""
    for art in release.artifacts:
        dest = model_dir / art.name / art.version
        dest.mkdir(parents=True, exist_ok=True)
        for f in art.files:
            shutil.copyfile(f.path, dest / f.path.name)
    os.environ["AZUREML_MODEL_DIR"] = str(model_dir)
    script = release.inference.entry_script
    sys.path.insert(0, str(script.parent))
    spec = importlib.util.spec_from_file_location("bench_score", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.init()
    return module


def time_in_process(module: Any, rows: np.ndarray, batch_size: int, as_json_lists: bool = False) -> float:
    """rows/s of run() on the same batches: ndarrays (what a notebook passes), or the lists the
    server hands run() after JSON decoding (so inference-schema's list-to-array conversion counts)."""
    batches = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    inputs: list[Any] = [b.tolist() for b in batches] if as_json_lists else batches
    began = time.perf_counter()
    for batch in inputs:
        module.run(batch)
    return len(rows) / (time.perf_counter() - began)


def time_worker_floor(module: Any, rows: np.ndarray, batch_size: int) -> float:
    """rows/s of the least work one server worker does per batch: json.loads of the request body,
    run() on the decoded lists, json.dumps of the answer; no HTTP, Flask or gunicorn. One worker
    can never score faster than this, so ``in-process / floor`` bounds the endpoint's ratio."""
    bodies = [json.dumps({"data": rows[i:i + batch_size].tolist()}) for i in range(0, len(rows), batch_size)]
    began = time.perf_counter()
    for body in bodies:
        json.dumps(module.run(json.loads(body)["data"]))
    return len(rows) / (time.perf_counter() - began)


def median_of_passes(passes: int, measure: Any, *args: Any) -> float:
    """Median of a few back-to-back passes: one pass of ~40 ms is at the mercy of the scheduler."""
    return statistics.median(measure(*args) for _ in range(passes))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, default=ROOT / "examples" / "port-weather" / "release.toml")
    ap.add_argument("--stage", default="devtest")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--batch-sizes", default="100,250,500,1000,4000")
    ap.add_argument("--concurrency", default="1,2,3")
    ap.add_argument("--passes", type=int, default=5)
    args = ap.parse_args()
    release = load_release(args.manifest)
    assert release.data is not None
    holdout = load_holdout(release.data)
    rows = holdout.rows
    work = Path(tempfile.mkdtemp(prefix="bench-acceptance-"))
    stage = release.stage(args.stage)
    endpoint = LocalEndpoint(release, stage, holdout.golden(release.data.golden_rows), log_path=work / "server.log")
    try:
        module = in_process_scorer(release, work / "models")
        handle = endpoint.deploy()
        print(f"{release.name}: {len(rows)} holdout rows, {stage.deployment.worker_count} server worker(s), "
              f"{os.cpu_count()} cpus, median of {args.repeat} (in-process: median of {args.passes} passes each)")
        print(f"{'batch':>6} {'conc':>4} {'endpoint rows/s':>16} {'in-process rows/s':>18} {'ratio':>6}"
              f" {'run(lists)':>11} {'ratio':>6} {'1-worker floor':>15} {'ceiling':>8}")
        for bs in (int(b) for b in args.batch_sizes.split(",")):
            for conc in (int(c) for c in args.concurrency.split(",")):
                score_rows(handle, rows, bs, conc)  # warm up connections and the worker
                ep, ip, il, fl = [], [], [], []
                for _ in range(args.repeat):  # interleaved, so contention hits all alike
                    ep.append(score_rows(handle, rows, bs, conc).rows_per_s)
                    ip.append(median_of_passes(args.passes, time_in_process, module, rows, bs))
                    il.append(median_of_passes(args.passes, time_in_process, module, rows, bs, True))
                    fl.append(median_of_passes(args.passes, time_worker_floor, module, rows, bs))
                e, i, li, f = (statistics.median(x) for x in (ep, ip, il, fl))
                print(f"{bs:>6} {conc:>4} {e:>16.0f} {i:>18.0f} {e / i:>6.1%} {li:>11.0f} {e / li:>6.1%}"
                      f" {f:>15.0f} {f / i:>8.1%}")
    finally:
        endpoint.teardown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
