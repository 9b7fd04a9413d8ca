"""The gate's own overhead: example gate wall time minus what the gate cannot avoid.

Runs the example gate (``python -m pytest --release-stage devtest`` in a temporary copy of
``examples/port-weather``) ``--repeats`` times and reports the median wall time minus
(azmlinfsrv's cold start + the configured load window). The cold start is measured in the same
run (median of as many starts, each just before a gate run): the real ``azmlinfsrv`` on the
example, from process start to the first 200 on liveness. The overhead is printed in seconds and
as a ratio to that cold start, so figures from machines of different speed compare.

    python benchmarks/bench_gate.py               # 5 gate runs
    python benchmarks/bench_gate.py --repeats 1
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from releasetest.checks.load.slo import parse_load
from releasetest.release.manifest import load_release

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "port-weather"
READY_BOUND_S = 120.0
#: Gate runs cache bytecode, as Python does by default: under ``PYTHONDONTWRITEBYTECODE`` (set in
#: many CI images) every run would also recompile releasetest and have pytest rewrite the asserts
#: of its plugins' modules again (~0.7 s here), which is the environment's cost, not the gate's.
GATE_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def cold_start_s() -> float:
    """Seconds from launching azmlinfsrv on the example to its first 200 on ``GET /``."""
    release = load_release(EXAMPLE / "release.toml")
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        models = Path(tmp) / "azureml-models"
        for art in release.artifacts:
            dest = models / art.name / art.version
            dest.mkdir(parents=True)
            for f in art.files:
                shutil.copyfile(f.path, dest / f.path.name)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        exe = Path(sys.executable).with_name("azmlinfsrv")
        env = {**os.environ, "AZUREML_MODEL_DIR": str(models)}
        started = time.monotonic()
        proc = subprocess.Popen([str(exe), "--entry_script", str(release.inference.entry_script),
                                 "--model_dir", str(models), "--port", str(port)],
                                cwd=str(EXAMPLE), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            while time.monotonic() - started < READY_BOUND_S:
                try:
                    if requests.get(f"http://127.0.0.1:{port}/", timeout=(0.5, 2.0)).status_code == 200:
                        return time.monotonic() - started
                except requests.RequestException:
                    pass
                try:  # the only pause: the server exiting ends it early
                    proc.wait(timeout=0.02)
                    raise SystemExit(f"azmlinfsrv exited with code {proc.returncode} while starting")
                except subprocess.TimeoutExpired:
                    pass
            raise SystemExit(f"azmlinfsrv not live within {READY_BOUND_S:g} s")
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def gate_s(workdir: Path) -> float:
    """Wall time of one example gate run in ``workdir`` (a fresh copy of the example)."""
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.copytree(EXAMPLE, workdir)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", "--release-stage", "devtest", "-p", "no:cacheprovider",
                           "-q"], cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=GATE_ENV)
    took = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"the example gate failed (exit {done.returncode}):\n{done.stdout[-3000:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    release = load_release(EXAMPLE / "release.toml")
    stage = release.stage("devtest")
    window = parse_load(release.suite_tables.get("load", {}), release, stage).duration_s
    colds, runs = [], []
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        for _ in range(args.repeats):  # interleaved, so both see the same machine
            colds.append(cold_start_s())
            runs.append(gate_s(Path(tmp) / "port-weather"))
    median, cold = statistics.median(runs), statistics.median(colds)
    overhead = median - (cold + window)
    if "PYTHONDONTWRITEBYTECODE" in os.environ:
        print("PYTHONDONTWRITEBYTECODE is set here; the gate runs were made without it (bytecode cached)")
    print(f"gate runs (s): {', '.join(f'{r:.2f}' for r in runs)}")
    print(f"azmlinfsrv cold starts (s): {', '.join(f'{c:.2f}' for c in colds)}")
    print(f"median gate {median:.2f} s; median azmlinfsrv cold start {cold:.2f} s; load window {window:g} s")
    print(f"overhead = median - (cold start + load window) = {overhead:.2f} s "
          f"= {overhead / cold:.2f} x the cold start (target <= 3 s)")


if __name__ == "__main__":
    main()
