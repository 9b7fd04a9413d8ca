"""A verdict carrying every finding key the suites agreed on, for testing the renderers.

The acceptance, schema and load suites are built elsewhere; this fixture is their contract as
the brief states it, so the report works the day they merge.
"""

from __future__ import annotations

import math
from typing import Any

from releasetest.verdict.seal import seal_verdict


def synthetic_verdict(decision: str = "BLOCK") -> dict[str, Any]:
    timeline = [[round(i * 0.02, 3), round(20 + 8 * math.sin(i / 40) + (90 if i % 211 == 0 else 0), 2)]
                for i in range(3000)]
    verdict = {
        "schema": "releasetest/verdict/1",
        "decision": decision,
        "reasons": ["load: 1 failed, 0 errors (suites/suite_load.py::test_p99)",
                    "test_p99: p99 latency 118 ms exceeds the SLO 100 ms"] if decision == "BLOCK" else
                   ["all 20 tests passed in suites: acceptance, load, schema, smoke"],
        "stage": "devtest", "promote_to": "production", "target": "local",
        "release": {
            "name": "port-weather", "id": "sha256:" + "ab" * 32, "manifest": "/x/release.toml",
            "artifacts": [{"name": "model-scaler", "version": "1",
                           "files": [{"path": "models/model-scaler.pkl", "sha256": "c3" * 32}]},
                          {"name": "support-vector-classifier", "version": "2",
                           "files": [{"path": "models/svc.onnx", "sha256": "68" * 32}]}],
            "entry_script": {"path": "score.py", "sha256": "7a" * 32},
            "configs": {"AciDeploymentConfig.yml": "15" * 32},
        },
        "endpoint": {"target": "local", "scoring_uri": "http://127.0.0.1:5001/score", "pid": 4242, "port": 5001},
        "deployment": {"stage": "devtest", "config": "AciDeploymentConfig.yml", "workers": 1,
                       "scoring_timeout_ms": 60000, "requires_approval_to_promote": True,
                       "settings": {"computeType": "ACI", "primaryKey": "***"}},
        "deploy": {"ok": True, "error": None, "seconds": 4.2,
                   "log_tail": "2026-01-01 INFO worker booted\n<script>alert('log')</script>"},
        "required_suites": ["smoke", "acceptance", "schema", "load"],
        "suites": {
            "smoke": {"passed": 7, "failed": 0, "errors": 0, "skipped": 0, "failing": [], "messages": {},
                      "tests": {"suites/suite_smoke.py::test_liveness": {"outcome": "passed", "seconds": 0.01}}},
            "acceptance": {"passed": 5, "failed": 0, "errors": 0, "skipped": 1, "failing": [], "messages": {},
                           "tests": {"suites/suite_acceptance.py::test_thresholds": {"outcome": "passed",
                                                                                     "seconds": 1.5}}},
            "schema": {"passed": 4, "failed": 0, "errors": 0, "skipped": 0, "failing": [], "messages": {}},
            "load": {"passed": 2, "failed": 1, "errors": 0, "skipped": 0,
                     "failing": ["suites/suite_load.py::test_p99"],
                     "messages": {"suites/suite_load.py::test_p99": "p99 latency 118 ms exceeds the SLO 100 ms"}},
        },
        "findings": {
            "acceptance": {
                "metrics": {"balanced_accuracy": 0.861, "f1_macro": 0.842, "accuracy": 0.873},
                "thresholds": [
                    {"metric": "balanced_accuracy", "kind": "min", "bound": 0.8, "value": 0.861,
                     "reference": 0.5, "passed": True},
                    {"metric": "f1_macro", "kind": "beats_reference", "bound": 0.55, "value": 0.842,
                     "reference": 0.5, "passed": True},
                    {"metric": "accuracy", "kind": "min", "bound": 0.9, "value": 0.873, "reference": None,
                     "passed": False},
                ],
                "references": {"majority": {"balanced_accuracy": 0.5, "f1_macro": 0.41},
                               "previous": {"balanced_accuracy": 0.85, "f1_macro": 0.83}},
                "confusion_matrix": {"labels": [0, 1], "matrix": [[420, 38], [31, 211]]},
                "parity": {"agreement": 0.998, "required": 0.99,
                           "mismatches": [{"row": 17, "inputs": [1.0, 0.5], "expected": 1, "got": 0}]},
                "class_distribution": {"expected": {"0": 458, "1": 242}, "predicted": {"0": 451, "1": 249}},
            },
            "schema": {
                "findings": [
                    {"kind": "missing_field", "severity": "defect", "status": 500,
                     "body": '{"data": [{}]}', "message": "a missing field crashed run() with HTTP 500",
                     "curl": "curl -sS -X POST http://127.0.0.1:5001/score -d '{\"data\": [{}]}'"},
                    {"kind": "wrong_type", "severity": "failure", "status": 200, "body": '{"data": "x"}',
                     "message": "a string was accepted as a row", "curl": "curl -sS -X POST ..."},
                ],
                "requests_sent": 120, "policy": "reject-invalid",
            },
            "load": {
                "latency_ms": {"p50": 21.0, "p90": 30.5, "p95": 41.2, "p99": 118.0, "p99_9": 130.0, "max": 140.2},
                "achieved_rps": 48.7, "target_rps": 50, "errors": {"503": 2}, "timeouts": 0,
                "slo": [{"name": "p95_ms", "bound": 80, "value": 41.2, "passed": True},
                        {"name": "p99_ms", "bound": 100, "value": 118.0, "passed": False}],
                "timeline": timeline, "capacity_rps": 61.0,
                "slo_derivation": "p99 bound = production scoringTimeoutMs / 10",
            },
            "custom": {"note": "<b>not bold</b>", "rows": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]},
        },
        "exit_status": 1 if decision == "BLOCK" else 0,
        "started_at": "2026-01-01T10:00:00+00:00", "finished_at": "2026-01-01T10:02:00+00:00",
        "releasetest_version": "0.1.0",
        "environment": {"python": "3.11.7", "implementation": "cpython", "platform": "Linux",
                        "packages": {"pytest": "9.0"}},
        "git": {"commit": "0123456789abcdef", "branch": "develop", "dirty": False},
    }
    return seal_verdict(verdict)
