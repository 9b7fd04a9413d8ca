"""Verdicts for testing the renderers, signing, history and promotion without running a gate.

Every finding and outcome is made by the product's own code from small fixed inputs: acceptance
by ``evaluate`` on a 500-row holdout, schema findings by the real probe catalogue, ``classify`` and
``find_leak``, load figures by ``summarize`` on fixed timings with SLOs from ``parse_load`` on the
bundled example's devtest stage, outcomes through ``Results``/``decide``/``build_verdict``, and the
seal by ``seal_verdict``. So the shapes are the ones a real run writes, and they follow the code.

The release section names a manifest that is not on disk (``/x/release.toml``): a promotion of
these verdicts is refused at its release check, before anything is deployed.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from releasetest.checks.acceptance.config import AcceptanceConfig, Threshold
from releasetest.checks.acceptance.evaluation import Evaluation, evaluate
from releasetest.checks.acceptance.scoring import BatchScores
from releasetest.checks.contract.findings import FAILURE, Finding
from releasetest.checks.contract.judging import classify, find_leak
from releasetest.checks.contract.probes import negative_probes
from releasetest.checks.load.latency import LoadResult, summarize
from releasetest.checks.load.slo import LoadSpec, failure_message, parse_load
from releasetest.checks.load.slo import evaluate as evaluate_slos
from releasetest.checks.tasks import Classification
from releasetest.endpoint.formats import Wire
from releasetest.endpoint.handle import EndpointHandle
from releasetest.release.data import Holdout
from releasetest.release.manifest import load_release
from releasetest.verdict.decision import Results, build_verdict, decide
from releasetest.verdict.seal import seal_verdict

from .conftest import EXAMPLE

CLASSES = (0, 1)
FEATURES = ("Temperature_C", "Current_weather_condition")
ROWS = 500
REQUIRED = ["smoke", "acceptance", "schema", "load"]
ISOLATION = ("isolation: bwrap (PID namespace, no capabilities, read-only file system except the work folder and a "
             "private /tmp; environment allow-list; network shared, server bound to 127.0.0.1)")
ENDPOINT = EndpointHandle(target="local", scoring_uri="http://127.0.0.1:5001/score",
                          liveness_uri="http://127.0.0.1:5001/", swagger_uri="http://127.0.0.1:5001/swagger.json",
                          log_path="/x/releasetest-out/server-devtest.log",
                          info={"isolation": ISOLATION, "pid": 4242, "port": 5001, "server": "azmlinfsrv", "workers": 1,
                                "scoring_timeout_ms": 60000, "max_body_bytes": 10485760, "ready_s": 3.9,
                                "deployment_config": "/x/AciDeploymentConfig.yml",
                                "model_dir": "/tmp/releasetest-x/azureml-models",
                                "wire": Wire(input="rows", features=FEATURES, batch_size=500).as_dict()})
#: The published example row the schema probes are built around (the example's seven features).
EXAMPLE_ROW = [23.61666667, 0.76, 12.7834, 79.0, 15.8263, 1015.66, 1.0]
#: What azmlinfsrv answers when run() raises: the generic text, or (BLOCK) a leaked traceback.
CLEAN_500 = "An unexpected internal error occurred. Check the logs for more details."
LEAKY_500 = ('Traceback (most recent call last):\n  File "/var/azureml-app/score.py", line 41, in run\n'
             "ValueError: could not convert string to float: 'warm'")

ACCEPTANCE = AcceptanceConfig(task=Classification(CLASSES), parity=0.99,
                              persistence_feature="Current_weather_condition", thresholds=(
    Threshold("accuracy", "min", 0.93),
    Threshold("accuracy", "min_absolute_change", 0.005, "persistence"),
    Threshold("balanced_accuracy", "min_absolute_change", 0.25, "majority"),
    Threshold("roc_auc", "min", 0.9),
))


def acceptance_evaluation(decision: str, parity_rows: int = 1) -> Evaluation:
    """A 500-row holdout, 20% class 0. PROMOTE's model errs on 10 rows, BLOCK's on 50 (below the
    accuracy minimum and the persistence baseline); the training-time predictions differ from what
    the endpoint says on ``parity_rows`` rows (one: parity 0.998)."""
    labels = [0 if i % 5 == 0 else 1 for i in range(ROWS)]
    current = [1 - y if i % 25 == 1 else y for i, y in enumerate(labels)]
    rows = np.array([[10 + (i % 17) * 0.5, c] for i, c in enumerate(current)], dtype=np.float64)
    wrong = 50 if decision == "PROMOTE" else 10
    predictions = [1 - y if i % wrong == 3 else y for i, y in enumerate(labels)]
    flipped = {7, *range(9, 9 + 3 * (parity_rows - 1), 3)}
    expected = [1 - p if i in flipped else p for i, p in enumerate(predictions)]
    p1 = [0.7 + 0.025 * (i * 37 % 11) if p == 1 else 0.05 + 0.05 * (i * 53 % 7) for i, p in enumerate(predictions)]
    holdout = Holdout(features=FEATURES, rows=rows, labels=labels, expected=expected, classes=CLASSES)
    scores = BatchScores(predictions, np.array([[1 - p, p] for p in p1]), seconds=0.25, requests=1)
    return evaluate(ACCEPTANCE, holdout, scores)


def schema_findings(decision: str) -> dict[str, list[Finding]]:
    """Two probes' findings, by probe, as the suite judges them under the ``azure`` policy: a 500
    for a word where a number belongs and a scored NaN (defects); in BLOCK the 500 also leaks a
    traceback (a failure)."""
    probes = negative_probes(EXAMPLE_ROW)
    answers = {"string-value": (500, LEAKY_500 if decision == "BLOCK" else CLEAN_500),
               "nan-value": (200, '{"predictions": [1]}')}
    by_probe: dict[str, list[Finding]] = {}
    for name, (status, text) in answers.items():
        probe = probes[name]
        curl = probe.curl(ENDPOINT.scoring_uri, None)
        found = by_probe.setdefault(name, [])
        leak = find_leak(text)
        if leak:
            found.append(Finding("leak", FAILURE, status, probe.shown_body(), curl,
                                 f"{probe.what}: the {status} answer leaks a {leak}"))
        judged = classify(probe, status, text, "azure", has_key=False, classes=CLASSES)
        if judged is not None:
            found.append(Finding(name, judged.severity, status, probe.shown_body(), curl, judged.message,
                                 judged.problem))
    return by_probe


def load_spec() -> LoadSpec:
    """The bundled example's devtest stage with p95 bounded at 80 ms; p99 comes from its scoringTimeoutMs."""
    release = load_release(EXAMPLE / "release.toml")
    return parse_load({"rate": 50, "duration_s": 62, "warmup_s": 2, "p95_ms": 80}, release, release.stage("devtest"))


def load_result(decision: str, spec: LoadSpec) -> LoadResult:
    """3100 requests due at 50 req/s, the first 2 s warm-up. Latency waves between 12 and 28 ms;
    every 211th request is 30 ms slower (PROMOTE), every 15th 98 ms slower and two get a 503 (BLOCK)."""
    n = round(spec.rate * spec.duration_s)
    slow, extra = (15, 98.0) if decision == "BLOCK" else (211, 30.0)
    intended = [i / spec.rate for i in range(n)]
    latency_s = [(20 + 8 * math.sin(i / 40) + (extra if i % slow == 0 else 0.0)) / 1000 for i in range(n)]
    status = [503 if decision == "BLOCK" and i in (700, 2100) else 200 for i in range(n)]
    return summarize(mode="open", intended=intended, sent=intended,
                     done=[t + d for t, d in zip(intended, latency_s, strict=True)], status=status,
                     warmup_s=spec.warmup_s, end_s=spec.duration_s, concurrency=spec.concurrency,
                     target_rps=spec.rate)


#: What a deploy BLOCK's server said: score.py's init() cannot load the model.
DEPLOY_ERROR = ("the server exited with status 3 before it was ready (after 2.8 s); its log says: "
                "ModuleNotFoundError: No module named 'sklearn'")
DEPLOY_LOG = ("2026-01-01 10:00:01 INFO azmlinfsrv: starting gunicorn 22.0.0\n"
              "2026-01-01 10:00:02 INFO azmlinfsrv: Booting worker with pid: 4243\n"
              "2026-01-01 10:00:02 INFO azmlinfsrv: Users's init has started\n"
              "Traceback (most recent call last):\n  File \"/x/score.py\", line 9, in init\n"
              "    import sklearn\nModuleNotFoundError: No module named 'sklearn'\n"
              "2026-01-01 10:00:03 INFO azmlinfsrv: Worker exiting (pid: 4243)")


def _outcomes(results: Results, suite: str, module: str, tests: list[str], failing: dict[str, str],
              skipped: dict[str, str], setup_error: str | None = None) -> None:
    """Each test's setup, call and teardown reports, as pytest hands them to the gate."""
    for name in tests:
        nodeid = f"suites/{module}::{name}"
        if setup_error:
            results.add(suite, nodeid, "setup", "failed", setup_error, seconds=0.001)
            continue
        results.add(suite, nodeid, "setup", "passed", seconds=0.001)
        if name in skipped:
            results.add(suite, nodeid, "call", "skipped", skipped[name], seconds=0.001)
        else:
            results.add(suite, nodeid, "call", "failed" if name in failing else "passed", failing.get(name),
                        seconds=0.05)
        results.add(suite, nodeid, "teardown", "passed", seconds=0.001)


@functools.cache
def _evidence_findings() -> dict[str, Any]:
    """The drift and shadow findings of a run with recorded traffic (a real run's, lists cut to two
    items): the example gates on its recorded traffic, so a real verdict has them."""
    return json.loads((Path(__file__).parent / "data" / "evidence-findings.json").read_text())


def synthetic_verdict(decision: str = "BLOCK", variant: str = "") -> dict[str, Any]:
    """A sealed verdict from a run that PROMOTEs, or one that BLOCKs on an acceptance minimum and the
    persistence baseline, a leaked traceback and the p95 latency SLO; a fresh copy each call, so a
    test may edit it. ``variant`` turns PROMOTE's run into a BLOCK of one kind: ``parity`` (the
    endpoint's answers differ from expected_predictions on 60 of 500 rows) or ``deploy`` (init()
    fails, every test errors at setup)."""
    return copy.deepcopy(_verdict(decision, variant))


@functools.lru_cache(maxsize=4)
def _verdict(decision: str, variant: str = "") -> dict[str, Any]:
    deploy_error = DEPLOY_ERROR if variant == "deploy" else None
    setup_error = f"deploy failed: {DEPLOY_ERROR}" if deploy_error else None
    evaluation = acceptance_evaluation(decision, parity_rows=60 if variant == "parity" else 1)
    spec = load_spec()
    load = load_result(decision, spec)
    slos = evaluate_slos(spec, load)
    schema = schema_findings(decision)
    results = Results()
    _outcomes(results, "smoke", "suite_smoke.py",
              ["test_liveness", "test_swagger_example_scores[2]", "test_swagger_example_scores[3]",
               "test_output_conforms_to_output_schema", "test_golden_rows", "test_same_request_same_answer",
               "test_batch_returns_one_label_per_row", "test_auth_enforced",
               "test_memory_stable_under_repeated_requests"],
              {}, {"test_auth_enforced": "authEnabled is False in AciDeploymentConfig.yml"}, setup_error)
    _outcomes(results, "acceptance", "suite_acceptance.py",
              ["test_holdout_scored_through_endpoint", "test_predictions_are_not_constant",
               "test_training_serving_parity", "test_absolute_minimums", "test_beats_naive_baselines",
               "test_no_regression_against_champion"],
              {**{test: "; ".join(r.message for r in failed) for test, refs in
                  (("test_absolute_minimums", (None,)), ("test_beats_naive_baselines", ("majority", "persistence")))
                  if (failed := evaluation.failed(refs))},
               **({"test_training_serving_parity": f"training-serving parity {parity['agreement']:.4f} is below the "
                   f"required {parity['required']:.4f}: {parity['mismatching_rows']} of {ROWS} rows differ from "
                   "expected_predictions"} if (parity := evaluation.parity) and not parity["passed"] else {})},
              {"test_no_regression_against_champion": "no threshold of this kind in [acceptance.thresholds]"},
              setup_error)
    probe_failures = {f"test_negative_input[{name}]": failed[0].message for name, found in schema.items()
                      if (failed := [f for f in found if f.severity == FAILURE])}
    _outcomes(results, "schema", "suite_schema.py",
              ["test_published_contract", "test_valid_inputs_are_answered_by_contract",
               *(f"test_negative_input[{name}]" for name in negative_probes(EXAMPLE_ROW))],
              probe_failures, {}, setup_error)
    _outcomes(results, "load", "suite_load.py", ["test_slo_at_expected_rate", "test_capacity"],
              {} if all(s["passed"] for s in slos) else {"test_slo_at_expected_rate": failure_message(slos, load)},
              {"test_capacity": "capacity mode is off (set capacity = true in [load] to find the highest rate "
                                "that holds)"}, setup_error)
    verdict, reasons = decide(results, REQUIRED, deploy_error, None)
    assert verdict == ("BLOCK" if variant else decision), (verdict, reasons)
    return seal_verdict(build_verdict(
        decision=verdict, reasons=reasons, warnings=[], stage="devtest", promote_to="production", target="local",
        release={
            "name": "port-weather", "id": "sha256:" + "ab" * 32, "manifest": "/x/release.toml",
            "artifacts": [{"name": "model-scaler", "version": "1",
                           "files": [{"path": "models/model-scaler.pkl", "sha256": "c3" * 32}]},
                          {"name": "support-vector-classifier", "version": "2",
                           "files": [{"path": "models/svc.onnx", "sha256": "68" * 32}]}],
            "entry_script": {"path": "score.py", "sha256": "7a" * 32},
            "configs": {"AciDeploymentConfig.yml": "15" * 32},
            "components": {"config AciDeploymentConfig.yml": "15" * 32, "code score.py": "7a" * 32,
                           "release.toml [acceptance]": "71" * 32},
        },
        endpoint=None if deploy_error else ENDPOINT.describe(),
        deployment={"stage": "devtest", "config": "AciDeploymentConfig.yml", "workers": 1,
                    "scoring_timeout_ms": 60000, "requires_approval_to_promote": True,
                    "settings": {"computeType": "ACI", "containerResourceRequirements": {"cpu": 1, "memoryInGB": 1},
                                 "primaryKey": "***"}},
        deploy={"ok": False, "error": DEPLOY_ERROR, "answered": False, "seconds": 2.8, "log_tail": DEPLOY_LOG,
                "isolation": ISOLATION}
               if deploy_error else {"ok": True, "error": None, "answered": False, "seconds": 4.2,
                                     "isolation": ISOLATION,
                "log_tail": "2026-01-01 INFO worker booted\n<script>alert('log')</script>",
                "left_behind": {"pid": 4242, "port": 5001, "log": ENDPOINT.log_path,
                                "model_dir": "/tmp/releasetest-x"}},
        results=results,
        findings={} if deploy_error else {
            "smoke": {"probes": {"test_liveness": {"sent": 1, "answered": 1},
                                 "test_golden_rows": {"sent": 1, "answered": 1}}},
            "acceptance": evaluation.findings().to_json(),
            "schema": {"findings": [f.to_json() for found in schema.values() for f in found], "policy": "azure",
                       "requests_sent": 118, "requests_by_process": {"main": 118}},
            "load": {**load.findings().to_json(), "slo": slos, "slo_derivation": "\n".join(spec.derivation),
                     "memory": {"requests": load.requests, "rss_growth_mb": 0.4, "max_rss_growth_mb": 64.0}},
            **_evidence_findings(),
        },
        required=REQUIRED,
        exit_status=0 if verdict == "PROMOTE" else 1,
        started_at="2026-01-01T10:00:00+00:00", finished_at="2026-01-01T10:02:00+00:00",
        environment={"python": "3.11.7", "implementation": "cpython", "platform": "Linux",
                     "packages": {"pytest": "9.0"},
                     "conda_check": {"conda_file": "/x/myenv.yml", "interpreter": "/x/.venv/bin/python",
                                     "python": "3.11.7", "mismatches": [], "unpinned": [], "mode": "warn"}},
        git={"commit": "0123456789abcdef", "branch": "develop", "dirty": False},
    ))
