"""The gate's own overhead: example gate wall time minus what the gate cannot avoid.

Runs the example gate (``python -m pytest --release-stage devtest`` in a temporary copy of
``examples/port-weather``) ``--repeats`` times and reports the median wall time minus
(azmlinfsrv's cold start + the configured load window). The cold start is measured in the same
run (median of as many starts, each just before a gate run): the real ``azmlinfsrv`` on the
example, from process start to the first 200 on liveness. The overhead is printed in seconds and
as a ratio to that cold start, so figures from machines of different speed compare. Each repeat
gates the example twice: as it ships, and without its recorded production traffic (the four suites
the 3 s target was first set on; the drift and shadow suites' reading and replaying of 3,197
recorded rows is their own work, as the load window is the load suite's).

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


#: Where the example's recorded-production tables start: the drift and shadow suites' own work
#: (reading and replaying 3,197 recorded rows) follows from them, not from the gate.
PRODUCTION_TABLES = "\n# Recorded production traffic"


def gate_s(workdir: Path, production: bool = True) -> float:
    """Wall time of one example gate run in ``workdir`` (a fresh copy of the example); without
    ``production``, the copy's manifest ends before its recorded-production tables (the four
    suites the overhead target was first measured on)."""
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.copytree(EXAMPLE, workdir)
    if not production:
        manifest = workdir / "release.toml"
        text = manifest.read_text()
        assert PRODUCTION_TABLES in text, f"{PRODUCTION_TABLES!r} not in {manifest}"
        manifest.write_text(text[:text.index(PRODUCTION_TABLES)] + "\n")
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
    colds: list[float] = []
    runs: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        for _ in range(args.repeats):  # interleaved, so all see the same machine
            colds.append(cold_start_s())
            for production in runs:
                runs[production].append(gate_s(Path(tmp) / "port-weather", production))
    cold = statistics.median(colds)
    if "PYTHONDONTWRITEBYTECODE" in os.environ:
        print("PYTHONDONTWRITEBYTECODE is set here; the gate runs were made without it (bytecode cached)")
    print(f"azmlinfsrv cold starts (s): {', '.join(f'{c:.2f}' for c in colds)}; median {cold:.2f} s; "
          f"load window {window:g} s")
    for production, label in ((True, "the example"), (False, "the example without its recorded production traffic")):
        median = statistics.median(runs[production])
        overhead = median - (cold + window)
        print(f"{label}: gate runs (s) {', '.join(f'{r:.2f}' for r in runs[production])}; median {median:.2f} s; "
              f"overhead = median - (cold start + load window) = {overhead:.2f} s = {overhead / cold:.2f} x the "
              "cold start (target <= 3 s)")


if __name__ == "__main__":
    main()
