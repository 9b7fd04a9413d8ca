"""Azure ML v2's admission limit on the local endpoint: 2 x max_concurrent_requests_per_instance scoring
requests at once per instance, 429 "Too many pending requests" beyond, the scoring timeout still
enforced on the worker's main thread, and the load suite's SLO stated against the limit."""

from __future__ import annotations

import shutil
import socket
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import pytest
import requests

from releasetest.checks.load.latency import LoadResult
from releasetest.checks.load.slo import evaluate, failure_message, parse_load
from releasetest.endpoint.local import LocalEndpoint
from releasetest.endpoint.slots import Slots
from releasetest.release.data import load_holdout
from releasetest.release.manifest import load_release

from .conftest import port_closed, process_group_gone

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "v2-managed-sample"

#: run() of a request with "hold" reports to the test's socket and waits for its word (or the timeout).
HOLDING_SCORE = '''
import json
import os
import socket

import joblib
import numpy as np

model = None


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "sklearn_regression_model.pkl"))


def run(raw_data):
    request = json.loads(raw_data)
    if request.get("hold"):
        with socket.create_connection(("127.0.0.1", int(os.environ["HOLD_PORT"]))) as test:
            test.sendall(b"in")
            test.recv(1)
    return model.predict(np.asarray(request["data"], dtype=np.float64)).tolist()
'''


def sample(root: Path) -> Path:
    dest = root / "release"
    shutil.copytree(SAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", "train.py"))
    return dest


def test_slots_count_across_open_files(tmp_path: Path) -> None:
    slots = Slots(tmp_path / "slots", 2)
    first, second = slots.try_take(), slots.try_take()
    assert first is not None and second is not None
    assert slots.try_take() is None
    Slots.release(first)
    third = slots.take()
    assert slots.try_take() is None
    Slots.release(second)
    Slots.release(third)


def test_beyond_twice_the_cap_the_endpoint_answers_429_and_the_timeout_still_holds(tmp_path: Path) -> None:
    """cap 1 admits 2: one request held in run() past the scoring timeout, two more sent meanwhile, one of
    them admitted (it waits for the worker, then scores) and one refused with Azure's 429."""
    release_dir = sample(tmp_path)
    (release_dir / "onlinescoring" / "score.py").write_text(HOLDING_SCORE, encoding="utf-8")
    with socket.create_server(("127.0.0.1", 0)) as test:
        test.settimeout(60)
        deployment = release_dir / "blue-deployment.yml"
        deployment.write_text(deployment.read_text(encoding="utf-8") +
                              f"environment_variables:\n  HOLD_PORT: '{test.getsockname()[1]}'\n", encoding="utf-8")
        release = load_release(release_dir / "release.toml")
        assert release.data is not None
        holdout = load_holdout(release.data)
        local = LocalEndpoint(release, release.stage("devtest"), holdout.golden(release.data.golden_rows),
                              log_path=tmp_path / "serve.log")
        try:
            handle = local.deploy()
            assert handle.info["admits"] == 2
            body = {"data": holdout.rows[:1].tolist(), "hold": True}

            def post() -> requests.Response:
                return requests.post(handle.scoring_uri, json=body, headers=handle.headers(), timeout=60)

            with ThreadPoolExecutor(3) as pool:
                held = pool.submit(post)
                first, _ = test.accept()
                with first:
                    first.settimeout(60)
                    assert first.recv(2) == b"in"  # in run(), holding one of the two admissions
                    others = [pool.submit(post), pool.submit(post)]
                    done, _ = wait(others, timeout=60, return_when=FIRST_COMPLETED)
                    refused = done.pop().result()
                    # Never released: azmlinfsrv's SIGALRM timeout (5000 ms, v2's default) ends it.
                    timed_out = held.result(timeout=60)
                admitted_run, _ = test.accept()
                with admitted_run:
                    admitted_run.settimeout(60)
                    assert admitted_run.recv(2) == b"in"
                    admitted_run.sendall(b"g")
                admitted = next(f for f in others if f.result(timeout=60) is not refused).result()
        finally:
            local.teardown()
    assert refused.status_code == 429, refused.text
    assert refused.json()["message"].startswith("Too many pending requests: this instance admits 2 scoring requests")
    assert timed_out.status_code == 500 and "Scoring timeout after 5000 ms" in timed_out.text
    assert admitted.status_code == 200 and len(admitted.json()) == 1
    assert process_group_gone(handle.info["pid"]) and port_closed(handle.info["port"])


def _errors(codes: dict[str, int]) -> LoadResult:
    return LoadResult(mode="open", target_rps=10.0, measured_s=3.0, requests=30,
                      latency_ms={"p50": 1.0, "p90": 2.0, "p95": 3.0, "p99": 4.0, "p99_9": 4.0, "max": 4.0},
                      achieved_rps=10.0, errors=codes, timeouts=0, timeline=[], concurrency=3)


def test_the_load_slo_is_stated_against_the_cap_and_names_its_429s(tmp_path: Path) -> None:
    release = load_release(sample(tmp_path) / "release.toml")
    spec = parse_load({}, release, release.stage("devtest"))
    assert spec.concurrency == 1
    assert ("concurrency = 1: max_concurrent_requests_per_instance of blue-deployment.yml (what one instance "
            "scores at once; it admits 2 and answers 429 beyond") in "\n".join(spec.derivation)
    burst = parse_load({"concurrency": 3}, release, release.stage("devtest"))
    assert burst.concurrency == 3
    assert ("concurrency 3 is beyond the 2 requests one instance of blue-deployment.yml admits at once: requests "
            "beyond get 429 (Too many pending requests) and count as errors") in burst.derivation
    result: Any = _errors({"429": 3})
    message = failure_message([s for s in evaluate(burst, result) if s["name"] == "max_error_rate"], result,
                              burst.refusal)
    assert message.endswith("error rate 10.00% exceeds 0.10% (429: 3 of 30; 429 is the answer beyond the 2 scoring "
                             "requests one instance admits at once (2 x max_concurrent_requests_per_instance 1 of "
                             "blue-deployment.yml))")


@pytest.mark.parametrize("table", [{}, {"concurrency": 2}])
def test_a_v1_stage_keeps_its_cap_as_a_bound(table: dict[str, Any]) -> None:
    release = load_release(Path(__file__).resolve().parent.parent / "examples" / "port-weather" / "release.toml")
    spec = parse_load(table, release, release.stage("production"))
    assert spec.refusal is None and spec.concurrency == 2
