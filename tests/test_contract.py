"""Unit tests of releasetest.checks.contract (no endpoint). The swagger files in tests/data are what
azmlinfsrv 1.5.1 served for the example release (GET /swagger.json and ?version=3)."""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings

from releasetest.checks.contract.config import SchemaConfig, parse_schema_config
from releasetest.checks.contract.curl import curl_line
from releasetest.checks.contract.findings import DEFECT, FAILURE
from releasetest.checks.contract.inputs import FeatureRange, learn_ranges, rows_strategy
from releasetest.checks.contract.judging import classify, find_leak, output_violation
from releasetest.checks.contract.probes import PROBE_NAMES, SIGNATURE_PROBES, RepeatedRows, negative_probes
from releasetest.checks.contract.reading import ContractError, declares_bearer, read_contract
from releasetest.endpoint.formats import Wire
from releasetest.errors import ConfigError
from releasetest.release.manifest import load_release
from releasetest.run import ReleaseRun
from releasetest.settings import resolve

DATA = Path(__file__).parent / "data"
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "port-weather" / "release.toml"
FEATURES = ["t", "h", "w", "b", "v", "p", "c"]
WIRE = Wire(features=tuple(FEATURES))
ROW = [23.61666667, 0.76, 12.7834, 79.0, 15.8263, 1015.66, 1.0]
OUTPUT_SCHEMA = json.loads((DATA / "swagger-v2.json").read_text())["definitions"]["ServiceOutput"]


def _swagger() -> tuple[dict[str, Any], dict[str, Any]]:
    return (json.loads((DATA / "swagger-v2.json").read_text()), json.loads((DATA / "swagger-v3.json").read_text()))


def test_reads_the_contract_azmlinfsrv_publishes() -> None:
    v2, v3 = _swagger()
    contract = read_contract(v2, v3, WIRE)
    assert contract.n_features == 7
    assert contract.example_rows == [ROW]
    assert [kind for kind, _ in contract.findings] == ["schema-feature-count-unpinned", "schema-data-not-required"]
    assert declares_bearer(v2)


def test_a_pinned_contract_has_no_gaps() -> None:
    v2, v3 = _swagger()
    for defs in (v2["definitions"], v3["components"]["schemas"]):
        defs["ServiceInput"]["required"] = ["data"]
        defs["ServiceInput"]["properties"]["data"]["items"].update(minItems=7, maxItems=7)
    assert read_contract(v2, v3, WIRE).findings == ()


@pytest.mark.parametrize(("change", "message"), [
    (lambda v2, v3: v2["definitions"].pop("ServiceInput"), "swagger.json version 2 has no ServiceInput"),
    (lambda v2, v3: v3["components"]["schemas"]["ServiceOutput"].update(required=[]),
     "version 2 and version 3 publish different"),
    (lambda v2, v3: v2["definitions"]["ServiceInput"]["example"].update(data=[[1.0, 2.0, 3.0]]),
     "the published example rows have 3 values, the manifest's [data] features name 7 (t, h, w, b, v, p, c)"),
    (lambda v2, v3: [d["ServiceInput"]["properties"]["data"]["items"]["items"].update(type="string")
                     for d in (v2["definitions"], v3["components"]["schemas"])],
     "cells are of type 'string'"),
    (lambda v2, v3: [d["ServiceInput"]["properties"].pop("data")
                     for d in (v2["definitions"], v3["components"]["schemas"])],
     "has no 'data' property"),
], ids=["no-input", "v2-v3-differ", "feature-count", "cell-type", "no-data"])
def test_contract_errors(change: Any, message: str) -> None:
    v2, v3 = _swagger()
    change(v2, v3)
    with pytest.raises(ContractError) as info:
        read_contract(v2, v3, WIRE)
    assert message in str(info.value)


@pytest.mark.parametrize("text", [
    '{"message": "An unexpected error occurred in scoring script. Check the logs for more info."}',
    '{"message": "POST body could not be decoded as JSON: Expecting value: line 1 column 14 (char 13)"}',
    '{"message": "Expects Content-Type to be application/json"}',
    '{"message": "A value is not provided for the \'data\' parameter."}',
    '{"predictions": [1], "probabilities": [[0.016, 0.984]]}',
    '{"message": "see https://example.org/usr/docs/page"}',
])
def test_clean_answers_leak_nothing(text: str) -> None:
    assert find_leak(text) is None


@pytest.mark.parametrize(("text", "what"), [
    ("Traceback (most recent call last):\n  ...", "Python traceback"),
    ('  File "score.py", line 63, in run', "stack frame"),
    ("could not open /var/azureml-app/models/m.onnx", "file path"),
    (r"C:\Users\svc\model\score.py", "file path"),
    ("ValueError: Input X contains infinity", "exception text"),
    ("failed in score.py", "Python source file"),
])
def test_leaks_are_named(text: str, what: str) -> None:
    leak = find_leak(text)
    assert leak is not None and leak.startswith(what)


def test_curl_line_round_trips_and_never_holds_the_key() -> None:
    body = b'{"data":[["it\'s",NaN]]}'
    line = curl_line("POST", "http://127.0.0.1:5001/score", body, key_env="RELEASETEST_ENDPOINT_KEY")
    argv = shlex.split(line)
    assert argv[argv.index("--data-binary") + 1] == body.decode()
    assert "Authorization: Bearer $RELEASETEST_ENDPOINT_KEY" in argv
    assert curl_line("GET", "http://h/score", content_type=None) == "curl -sS -i -X GET http://h/score"
    with pytest.raises(ValueError):
        curl_line("POST", "http://h/score", b"x" * 5000)


def test_probe_catalogue() -> None:
    probes = negative_probes(ROW, oversized_kib=64)
    assert tuple(probes) == tuple(n for n in PROBE_NAMES if n not in SIGNATURE_PROBES)
    assert json.loads(probes["too-few-features"].body or b"") == {"data": [ROW[:6]]}
    assert b"NaN" in (probes["nan-value"].body or b"")
    oversized = probes["oversized-body"].body
    assert isinstance(oversized, RepeatedRows)
    whole = b"".join(oversized)
    assert len(whole) == len(oversized) and 60 * 1024 < len(whole) <= 64 * 1024
    assert json.loads(whole)["data"] == [ROW] * oversized.copies == [ROW] * probes["oversized-body"].rows
    assert "python3 -c" in probes["oversized-body"].curl("http://h/score", None)
    assert probes["non-json-body"].rows is None


@pytest.mark.parametrize(("name", "status", "text", "policy", "expected"), [
    ("too-few-features", 500, "{}", "azure", DEFECT),
    ("too-few-features", 500, "{}", "strict", FAILURE),
    ("too-few-features", 400, "{}", "strict", None),
    ("too-few-features", 502, "{}", "azure", FAILURE),
    ("nan-value", 200, '{"predictions": [1]}', "azure", DEFECT),
    ("nan-value", 200, '{"predictions": [1]}', "strict", FAILURE),
    ("extra-key", 200, '{"predictions": [1], "probabilities": [[0.5, 0.5]]}', "strict", None),
    ("extra-key", 200, '"error"', "azure", FAILURE),
    ("extra-key", 500, "{}", "azure", DEFECT),
    ("no-key", 200, "{}", "strict", DEFECT),
    ("no-key", 401, "{}", "strict", None),
])
def test_classify(name: str, status: int, text: str, policy: str, expected: str | None) -> None:
    judged = classify(negative_probes(ROW, 1)[name], status, text, policy, has_key=False,
                      output_schema=OUTPUT_SCHEMA, classes=(0, 1))
    assert (judged[0] if judged else None) == expected


def test_a_key_that_is_not_enforced_fails_under_every_policy() -> None:
    probe = negative_probes(ROW, 1)["no-key"]
    for policy in ("azure", "strict"):
        judged = classify(probe, 200, "{}", policy, has_key=True)
        assert judged is not None and judged[0] == FAILURE and "auth not enforced" in judged[1]


@pytest.mark.parametrize(("body", "message"), [
    ("error", "does not match the published output schema: 'error' is not of type 'object' at top level"),
    ({"predictions": [1, 0], "probabilities": [[0.5, 0.5]] * 2}, "sent 1 rows, got 2 predictions"),
    ({"predictions": [7], "probabilities": [[0.5, 0.5]]}, "labels 7 are not among the release's classes [0, 1]"),
    ({"predictions": [1], "probabilities": [[1.5, -0.5]]}, "probabilities [1.5, -0.5] are not 2 values in [0, 1]"),
    ({"predictions": [1]}, "'probabilities' is a required property"),
])
def test_output_violations(body: Any, message: str) -> None:
    problem = output_violation(body, OUTPUT_SCHEMA, 1, (0, 1))
    assert problem is not None and message in problem


def test_valid_output_keeps_the_contract() -> None:
    assert output_violation({"predictions": [0], "probabilities": [[0.9, 0.1]]}, OUTPUT_SCHEMA, 1, (0, 1)) is None


def test_ranges_and_edges_come_from_the_holdout() -> None:
    rows = np.array([[-2.0, 0.0, 3.0], [5.5, 4.0, 1.0]])
    ranges = learn_ranges(["a", "b", "c"], rows)
    assert ranges == [FeatureRange("a", -2.0, 5.5, False), FeatureRange("b", 0.0, 4.0, True),
                      FeatureRange("c", 1.0, 3.0, True)]
    assert ranges[0].edges() == [-2.0, 5.5, 0.0]
    assert ranges[1].edges() == [0.0, 4.0]


RANGES = [FeatureRange("a", -2.0, 5.5, False), FeatureRange("b", 0.0, 359.0, True)]


@settings(max_examples=50, derandomize=True, database=None)
@given(rows_strategy(RANGES, max_rows=4))
def test_generated_rows_stay_in_range(rows: list[list[float]]) -> None:
    assert 1 <= len(rows) <= 4
    for a, b in rows:
        assert -2.0 <= a <= 5.5 and not math.isnan(a)
        assert 0 <= b <= 359 and b == int(b)


@pytest.mark.parametrize(("table", "key"), [
    ({"policy": "lenient"}, "schema.policy"),
    ({"max_examples": 0}, "schema.max_examples"),
    ({"max_rows": "16"}, "schema.max_rows"),
    ({"seed": True}, "schema.seed"),
    ({"polcy": "azure"}, "schema.polcy"),
])
def test_schema_table_errors_name_the_key(table: dict[str, Any], key: str) -> None:
    release = load_release(EXAMPLE)
    with pytest.raises(ConfigError) as info:
        parse_schema_config(table, release, release.stage("devtest"))
    assert info.value.key == key and info.value.fix


def test_schema_table_defaults_and_values() -> None:
    release = load_release(EXAMPLE)
    stage = release.stage("devtest")
    assert parse_schema_config({}, release, stage) == SchemaConfig(policy="azure")
    assert parse_schema_config({"policy": "strict", "seed": 7}, release, stage) == SchemaConfig(policy="strict", seed=7)


def test_findings_lists_extend_and_mappings_update(tmp_path: Path) -> None:
    """What lets several tests (or xdist workers) add to one findings list."""
    run = ReleaseRun(resolve({}, {}, {}, tmp_path, tmp_path))
    run.merge_findings({"schema": {"findings": [{"kind": "a"}], "requests_by_process": {"gw0": 3}, "policy": "x"}})
    run.merge_findings({"schema": {"findings": [{"kind": "b"}], "requests_by_process": {"gw1": 4}, "policy": "y"}})
    assert run.findings["schema"] == {"findings": [{"kind": "a"}, {"kind": "b"}],
                                      "requests_by_process": {"gw0": 3, "gw1": 4}, "policy": "y"}
