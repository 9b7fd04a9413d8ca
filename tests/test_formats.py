"""Input and output formats (releasetest.endpoint.formats) and the iris-multiclass example:
records input, one model joined to AZUREML_MODEL_DIR, and a row-at-a-time entry script."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from releasetest.checks.contract.probes import negative_probes
from releasetest.checks.contract.reading import ContractError, read_contract
from releasetest.endpoint.formats import Wire, WireSpec, detect
from releasetest.errors import EndpointError
from tests.conftest import INI, ReleaseProject, suites_gate

IRIS = Path(__file__).resolve().parent.parent / "examples" / "iris-multiclass"
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
ROW = [5.1, 3.5, 1.4, 0.2]
#: What inference-schema 1.8 publishes for PandasParameterType(orient="records") of the iris example.
RECORDS_INPUT = {
    "type": "object", "required": ["data"],
    "properties": {"data": {"type": "array", "format": "pandas.DataFrame:records", "items": {
        "type": "object", "required": list(FEATURES),
        "properties": {f: {"type": "number", "format": "double"} for f in FEATURES}}}},
    "example": {"data": [dict(zip(FEATURES, ROW, strict=True))]},
}
OUTPUT = {"type": "object", "properties": {"predictions": {"type": "array"}, "probabilities": {"type": "array"}}}


def _swagger(service_input: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    defs = {"ServiceInput": service_input, "ServiceOutput": OUTPUT}
    return {"definitions": defs}, {"components": {"schemas": json.loads(json.dumps(defs))}}


@pytest.mark.parametrize(("wire", "body"), [
    (Wire(features=FEATURES), {"data": [ROW]}),
    (Wire("records", FEATURES), {"data": [dict(zip(FEATURES, ROW, strict=True))]}),
    (Wire("input_data", FEATURES), {"input_data": {"columns": list(FEATURES), "index": [0], "data": [ROW]}}),
    (Wire("named", FEATURES, key="Inputs.data", others={"Inputs": {"data": [], "method": "predict"}}),
     {"Inputs": {"data": [ROW], "method": "predict"}}),
], ids=["rows", "records", "input_data", "named"])
def test_each_format_encodes_rows_and_reads_them_back(wire: Wire, body: dict[str, Any]) -> None:
    assert wire.body([ROW]) == body
    assert wire.rows_in(body) == [ROW]


@pytest.mark.parametrize(("service_input", "found"), [
    (RECORDS_INPUT, ("records", "data")),
    ({"properties": {"input_data": {"type": "object"}}}, ("input_data", None)),
    ({"properties": {"Inputs": {"type": "object", "properties": {
        "data": {"type": "array", "items": {"type": "array"}}, "method": {"type": "string"}}}}},
     ("named", "Inputs.data")),
    ({"type": "object", "example": {}}, ("rows", None)),  # azmlinfsrv's placeholder for an undecorated run()
], ids=["records", "input_data", "named", "raw-run"])
def test_the_format_is_read_from_the_published_service_input(service_input: dict[str, Any], found: tuple) -> None:
    assert detect(service_input) == found


@pytest.mark.parametrize(("wire", "answer", "expected"), [
    (Wire(predictions="result", probabilities="proba"), {"result": ["a"], "proba": [[0.9, 0.1]]},
     (["a"], [[0.9, 0.1]])),
    (Wire(), json.dumps({"result": [3]}), ([3], None)),
    (Wire(), ["x", "y"], (["x", "y"], None)),
])
def test_answers_are_decoded_by_the_manifest_keys(wire: Wire, answer: Any, expected: tuple) -> None:
    assert wire.decode(answer) == expected


def test_a_missing_named_key_says_which() -> None:
    with pytest.raises(EndpointError, match="no 'result' key"):
        Wire(predictions="result").decode({"predictions": [1]})


def test_record_probes_miss_add_mistype_and_reorder_columns() -> None:
    probes = negative_probes(ROW, 1, Wire("records", FEATURES))
    record = {name: json.loads(p.body)["data"][0] for name, p in probes.items()  # type: ignore[arg-type]
              if name in ("too-few-features", "too-many-features", "string-value", "reordered-columns")}
    assert list(record["too-few-features"]) == list(FEATURES[:-1])
    assert set(record["too-many-features"]) - set(FEATURES) == {"extra_column_1"}
    assert record["string-value"]["sepal_length"] == "warm"
    assert list(record["reordered-columns"]) == list(reversed(FEATURES))
    big = probes["oversized-body"].body
    assert json.loads(b"".join(big))["data"][:2] == [dict(zip(FEATURES, ROW, strict=True))] * 2  # type: ignore[arg-type]


def test_a_renamed_published_column_is_named() -> None:
    renamed = json.loads(json.dumps(RECORDS_INPUT).replace("petal_width", "petal_width_cm"))
    wire = WireSpec(features=FEATURES).resolve(renamed)
    assert wire.input == "records"
    with pytest.raises(ContractError, match="missing: petal_width; not in the manifest: petal_width_cm"):
        read_contract(*_swagger(renamed), wire)


# --- the iris example through the gate --------------------------------------------------------


@pytest.fixture
def iris(pytester: pytest.Pytester) -> ReleaseProject:
    shutil.copytree(IRIS, pytester.path / "release", ignore=shutil.ignore_patterns("__pycache__", "train.py",
                                                                                    "iris.csv"))
    pytester.makeini(INI)
    return ReleaseProject(pytester, pytester.path)


def test_iris_promotes_with_records_and_a_single_model_dir(iris: ReleaseProject) -> None:
    """Records input, string labels, probabilities, and score.py joining AZUREML_MODEL_DIR with the file:
    a whole gate of the suites that read them (the load window adds nothing about the format)."""
    result = iris.run_inprocess(*suites_gate("smoke", "acceptance", "schema"))
    verdict = iris.verdict()
    assert verdict["decision"] == "PROMOTE", result.stdout.str()[-3000:]
    assert verdict["endpoint"]["wire"]["input"] == "records"


def test_renamed_record_column_blocks_on_the_schema(iris: ReleaseProject) -> None:
    iris.edit("score.py", '"petal_width": 0.2', '"petal_width_cm": 0.2')
    iris.edit("score.py", 'x = data[FEATURES].to_numpy(dtype="float64")', 'x = data.to_numpy(dtype="float64")')
    iris.run_inprocess("--release-stage", "devtest", "--release-require", "schema", "-m", "schema",
             "-k", "test_published_contract")
    verdict = iris.verdict()
    assert verdict["decision"] == "BLOCK"
    assert "missing: petal_width; not in the manifest: petal_width_cm" in json.dumps(verdict)


ONE_ROW = ('x = data[FEATURES].to_numpy(dtype="float64")',
           'x = data[FEATURES].to_numpy(dtype="float64")\n    assert len(x) == 1, "one row per request"')


def test_a_one_row_entry_script_is_recognised(iris: ReleaseProject) -> None:
    iris.edit("score.py", *ONE_ROW)
    iris.run_inprocess("--release-stage", "devtest", "--release-require", "smoke", "-m", "smoke")
    verdict = iris.verdict()
    assert verdict["decision"] == "BLOCK"
    assert re.search(r"the entry script fails on batches of \d+ rows and scores single rows; its contract looks "
                     r"like one row per request: set \[acceptance\] batch_size = 1", json.dumps(verdict))


def test_batch_size_one_is_honoured_by_the_golden_check_and_smoke(iris: ReleaseProject) -> None:
    iris.edit("score.py", *ONE_ROW)
    iris.edit("release.toml", "parity = 1.0", "parity = 1.0\nbatch_size = 1")
    result = iris.run_inprocess("--release-stage", "devtest", "--release-require", "smoke", "-m", "smoke",
                      "-k", "not memory")
    verdict = iris.verdict()
    assert verdict["decision"] == "PROMOTE", result.stdout.str()[-3000:]


def test_two_swapped_classes_block_naming_the_rows(iris: ReleaseProject) -> None:
    """A label mapping bug (versicolor and virginica swapped) BLOCKs at the golden rows, which hold
    one row of every class, naming the rows and labels that differ."""
    iris.edit("score.py", '"predictions": [str(p) for p in model.predict(x)]',
              '"predictions": [{"versicolor": "virginica", "virginica": "versicolor"}.get(str(p), str(p)) '
              'for p in model.predict(x)]')
    result = iris.run_inprocess("--release-stage", "devtest", "--release-require", "smoke", "-m", "smoke")
    assert result.ret == 1
    reason = iris.verdict()["reasons"][0]
    assert reason.startswith("the endpoint is up, but "), reason
    assert " golden rows differ from the training-time predictions (" in reason
    assert "got 'virginica', recorded 'versicolor'" in reason and "got 'versicolor', recorded 'virginica'" in reason
