"""Contract mistakes named for what they are: an integer inference-schema sample against fractional
holdout values, an MLflow signature that refuses the holdout, a published output schema that
disagrees with the answers, and a run() that answers its exceptions' text with status 200."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from releasetest.endpoint.factory import TargetOptions, build_endpoint
from releasetest.endpoint.formats import Wire, integer_schema_cause
from releasetest.errors import DeployError
from releasetest.release.manifest import load_release
from releasetest.release.mlflow_signature import Column, read_signature, signature_refusal

from .conftest import INI, gate_inprocess, suites_gate
from .recorded_target import RecordedTarget
from .test_v2_release import MLFLOW, SAMPLE, copy, edit

INTEGER_ROWS = {"type": "object", "properties": {"data": {
    "type": "array", "items": {"type": "array", "items": {"type": "integer", "format": "int64"}},
    "example": [[23, 0, 12]], "format": "numpy.ndarray"}}}
FEATURES = ("Temperature_C", "Humidity", "Wind_speed_kmph")


def test_an_integer_sample_against_fractional_rows_is_named_with_the_fix() -> None:
    cause = integer_schema_cause(INTEGER_ROWS, Wire(features=FEATURES), [[23.0, 0.76, 12.0]])
    assert cause is not None
    assert "types 'data' as integer" in cause and "Humidity = 0.76" in cause and "0.76 arrives as 0" in cause
    assert "fix: give the @input_schema sample float values" in cause


@pytest.mark.parametrize(("schema", "rows"), [
    (INTEGER_ROWS, [[23.0, 1.0, 12.0]]),  # whole numbers survive the cast
    (json.loads(json.dumps(INTEGER_ROWS).replace('"integer", "format": "int64"', '"number"')), [[23.5, 0.76, 1.0]]),
    (None, [[0.5, 0.5, 0.5]]),  # a raw run() publishes nothing
], ids=["whole-numbers", "number-schema", "no-schema"])
def test_no_integer_cause_where_the_cast_loses_nothing(schema: dict[str, Any] | None, rows: list[list[float]]) -> None:
    assert integer_schema_cause(schema, Wire(features=FEATURES), rows) is None


def test_an_integer_record_column_is_named() -> None:
    records = {"type": "object", "properties": {"data": {"type": "array", "items": {"type": "object", "properties": {
        "a": {"type": "number"}, "b": {"type": "integer"}}}}}}
    cause = integer_schema_cause(records, Wire(input="records", features=("a", "b")), [[0.5, 2.25]])
    assert cause is not None and "b = 2.25" in cause


def test_the_example_signature_reads_without_mlflow() -> None:
    columns = read_signature(MLFLOW / "model")
    assert columns is not None and [c.name for c in columns][:3] == ["age", "sex", "bmi"]
    assert {c.type for c in columns} == {"double"}


def test_a_long_signature_column_against_fractional_rows_is_named_with_the_column_and_fix() -> None:
    columns = [Column("age", "double"), Column("bmi", "long")]
    cause = signature_refusal(columns, ("age", "bmi"), [[0.1, 2.0], [0.2, 0.0617]], Path("model/MLmodel"))
    assert cause is not None
    assert "types column 'bmi' as long" in cause and "bmi = 0.0617" in cause
    assert "fix: infer the signature from float data" in cause
    assert signature_refusal(columns, ("age", "bmi"), [[0.1, 2.0]], Path("MLmodel")) is None


def test_a_signature_without_a_manifest_feature_is_named() -> None:
    cause = signature_refusal([Column("age", "double")], ("age", "bmi"), [[0.1, 0.2]], Path("MLmodel"))
    assert cause is not None and "has no column 'bmi'" in cause


#: Microsoft's MLOpsPython template's score.py (diabetes regression), on the v2 sample's folder model:
#: an inference-schema input sample and an output schema that the answer ``{"result": [...]}`` breaks.
MLOPS_SCORE = """import os

import joblib
import numpy
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema, output_schema

model = None


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "sklearn_regression_model.pkl"))


input_sample = numpy.array([SAMPLE])
output_sample = numpy.array([3726.995])


@input_schema("data", NumpyParameterType(input_sample))
@output_schema(NumpyParameterType(output_sample))
def run(data):
    result = model.predict(data)
    return {"result": result.tolist()}
"""
INTEGER_SAMPLE = "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"
FLOAT_SAMPLE = "[0.038, 0.05, 0.062, 0.022, -0.044, -0.035, -0.043, -0.003, 0.02, -0.018]"


def mlops_release(root: Path, sample: str) -> Path:
    release = copy(SAMPLE, root)
    (release / "onlinescoring" / "score.py").write_text(MLOPS_SCORE.replace("SAMPLE", sample))
    return release


def test_an_integer_inference_schema_sample_blocks_with_its_cause(pytester: pytest.Pytester) -> None:
    """inference-schema casts each request to the sample's dtype: the template's integer sample
    turns the diabetes features (0.038...) into 0 and the golden rows differ. The gate says why."""
    mlops_release(pytester.path, INTEGER_SAMPLE)
    pytester.makeini(INI)
    result = gate_inprocess(pytester, "--release-stage", "devtest", "-m", "smoke")
    assert result.ret != 0
    verdict = json.loads((pytester.path / "releasetest-out" / "verdict.json").read_text())
    assert verdict["decision"] == "BLOCK"
    reasons = " ".join(verdict["reasons"])
    assert "the endpoint is up, but the published input schema types 'data' as integer" in reasons, reasons
    assert "fix: give the @input_schema sample float values" in reasons, reasons


def _whole_golden_rows(release: Path, n: int) -> None:
    """The first ``n`` holdout rows (the golden rows) rounded to whole numbers, their expected
    predictions made again by the model on them; the other rows stay fractional."""
    import csv

    import joblib
    import numpy as np

    holdout, expected = release / "data" / "holdout.csv", release / "data" / "expected_predictions.csv"
    with holdout.open(newline="") as f:
        header, *rows = list(csv.reader(f))
    label = header.index("progression")
    for row in rows[:n]:
        row[:] = [v if i == label else f"{round(float(v)):.1f}" for i, v in enumerate(row)]
    with holdout.open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    model = joblib.load(release / "model" / "sklearn_regression_model.pkl")
    golden = model.predict(np.array([[float(v) for i, v in enumerate(r) if i != label] for r in rows[:n]]))
    lines = expected.read_text().splitlines()
    expected.write_text("\n".join([lines[0], *map(repr, golden.tolist()), *lines[1 + n:]]) + "\n")


def test_an_integer_sample_is_named_when_only_parity_fails(pytester: pytest.Pytester) -> None:
    """Golden rows of whole numbers survive the cast, so readiness passes; the fractional rows
    arrive cast and differ from training: the parity failure names the same cause, first."""
    _whole_golden_rows(mlops_release(pytester.path, INTEGER_SAMPLE), 5)
    pytester.makeini(INI)
    _, verdict = _gate(pytester, "--release-require", "acceptance", "-m", "acceptance")
    assert verdict["decision"] == "BLOCK"
    [parity] = [r for r in verdict["reasons"] if r.startswith("test_training_serving_parity: ")]
    assert parity.startswith("test_training_serving_parity: the published input schema types 'data' as integer "
                             "(the inference-schema sample has an integer dtype) while the holdout has fractional "
                             "values (e.g. bmi = 25.8)"), parity
    cause = verdict["findings"]["acceptance"]["parity"]["cause"]
    assert "25.8 arrives as 25; fix: give the @input_schema sample float values" in cause, cause


def _gate(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    result = gate_inprocess(pytester, "--release-stage", "devtest", *args)
    return result, json.loads((pytester.path / "releasetest-out" / "verdict.json").read_text())


def _schema_findings(verdict: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [f for f in verdict["findings"]["schema"]["findings"] if f["kind"] == kind]


def test_an_output_schema_the_answers_contradict_is_a_named_defect_that_promotes_under_azure(
        pytester: pytest.Pytester) -> None:
    mlops_release(pytester.path, FLOAT_SAMPLE)
    pytester.makeini(INI.replace("release_partial_ok = true\n", ""))
    result = gate_inprocess(pytester, *suites_gate("schema"))
    verdict = json.loads((pytester.path / "releasetest-out" / "verdict.json").read_text())
    assert verdict["decision"] == "PROMOTE", verdict["reasons"]
    [finding] = _schema_findings(verdict, "output-schema-disagrees")
    assert finding["severity"] == "defect"
    assert "the published output schema (swagger ServiceOutput) claims an array of numbers" in finding["message"]
    assert "the endpoint returns an object with 'result'" in finding["message"]
    assert "fix: declare what run() returns, e.g. @output_schema(StandardPythonParameterType({\"result\": [" \
        in finding["message"]
    assert not _schema_findings(verdict, "output-schema-violation"), "reported once, not per answer"
    result.stdout.fnmatch_lines(["*the published output schema disagrees with the answers: 1*"])


def test_an_output_schema_the_answers_contradict_fails_under_strict(pytester: pytest.Pytester) -> None:
    release = mlops_release(pytester.path, FLOAT_SAMPLE)
    (release / "release.toml").write_text((release / "release.toml").read_text() + '\n[schema]\npolicy = "strict"\n')
    pytester.makeini(INI)
    _, verdict = _gate(pytester, "--release-require", "schema", "-m", "schema")
    assert verdict["decision"] == "BLOCK"
    assert _schema_findings(verdict, "output-schema-disagrees")[0]["severity"] == "failure"
    assert "test_published_contract" in " ".join(verdict["suites"]["schema"]["failing"])
    assert "the published output schema (swagger ServiceOutput) claims an array of numbers, but the endpoint " \
        "returns an object with 'result'" in " ".join(verdict["reasons"])


def test_a_run_that_answers_exceptions_as_text_is_reported_once_as_that_pattern(pytester: pytest.Pytester) -> None:
    """``except Exception as e: return str(e)`` (older Azure samples): every probe that makes run()
    raise gets 200 and the text; the gate names the pattern once, with the fix, under ``azure`` too."""
    release = copy(SAMPLE, pytester.path)
    score = release / "onlinescoring" / "score.py"
    score.write_text(score.read_text().replace(
        '''def run(raw_data):
    data = ''', '''def run(raw_data):
    try:
        return _run(raw_data)
    except Exception as e:
        error = str(e)
        return error


def _run(raw_data):
    data = '''))
    pytester.makeini(INI)
    _, verdict = _gate(pytester, "--release-require", "schema", "-m", "schema")
    assert verdict["decision"] == "BLOCK"
    [finding] = _schema_findings(verdict, "error-text-with-200")
    assert finding["severity"] == "failure" and finding["status"] == 200
    failing = verdict["suites"]["schema"]["failing"]
    assert len(failing) == 1 and "test_errors_are_raised_not_answered_as_text" in failing[0], failing
    reasons = " ".join(verdict["reasons"])
    assert "run() catches exceptions and answers their text with status 200" in reasons, reasons
    assert "fix: raise instead (drop the except that returns str(e)); azmlinfsrv answers 500" in reasons, reasons
    kinds = {f["kind"] for f in verdict["findings"]["schema"]["findings"]}
    assert not kinds & {"missing-data-key", "too-few-features", "string-value", "empty-row", "ragged-rows"}, kinds
    assert not any("carries no list of predictions" in f["message"] for f in verdict["findings"]["schema"]["findings"])


def test_the_signature_is_the_contract_of_a_no_code_mlflow_model() -> None:
    """Valid inputs take integers only where the signature types a column long, fractions
    elsewhere (even where the holdout shows whole numbers); the signature's probes are built."""
    import numpy as np

    from releasetest.checks.contract.inputs import learn_ranges
    from releasetest.checks.contract.probes import negative_probes
    from releasetest.checks.contract.reading import signature_contract

    wire = Wire(input="input_data", features=("age", "bmi"))
    contract = signature_contract(wire, ("long", "double"), [3.0, 2.0])
    cells = contract.input_schema["properties"]["input_data"]["properties"]["data"]["items"]["items"]
    assert [c["type"] for c in cells] == ["integer", "number"]
    holdout = np.array([[3.0, 2.0], [4.0, 5.0]])
    assert [r.integral for r in learn_ranges(wire.features, holdout, contract.integer_columns())] == [True, False]
    assert [r.integral for r in learn_ranges(wire.features, holdout)] == [True, True]
    probes = negative_probes(contract.example_rows[0], 64, wire, contract.column_types)
    missing = json.loads(probes["missing-signature-column"].body or b"")
    assert missing["input_data"]["columns"] == ["age"] and missing["input_data"]["data"] == [[3.0]]
    fraction = json.loads(probes["fraction-in-integer-column"].body or b"")
    assert fraction["input_data"]["data"] == [[3.5, 2.0]]
    assert "fraction-in-integer-column" not in negative_probes([1.0, 2.0], 64, wire, ("double", "double"))
    assert "missing-signature-column" not in negative_probes([1.0, 2.0], 64, wire)


def test_the_mlflow_release_is_probed_by_its_signature(pytester: pytest.Pytester) -> None:
    """The no-code endpoint publishes no swagger: the schema suite takes the MLmodel signature as the
    contract and the table without a required column is refused by the signature (4xx)."""
    pytest.importorskip("mlflow.pyfunc", reason="the mlflow extra is not installed")
    copy(MLFLOW, pytester.path)
    pytester.makeini(INI)
    result, verdict = _gate(pytester, "--release-require", "schema", "-m", "schema", "-rs", "-v")
    assert verdict["decision"] == "PROMOTE", verdict["reasons"]
    assert "missing-signature-column" not in {f["kind"] for f in verdict["findings"]["schema"]["findings"]}
    result.stdout.fnmatch_lines(["*fraction-in-integer-column probes what an MLflow signature promises; this "
                                 "release's contract has no integer column*"])
    result.stdout.fnmatch_lines(["*test_negative_input[[]missing-signature-column[]] PASSED*"])


@pytest.mark.parametrize("target", ["url", "azureml"])
def test_the_signature_cause_comes_from_one_owner_on_every_target(target: str, tmp_path: Path,
                                                                   recorded: RecordedTarget) -> None:
    """The factory gives every target the same golden diagnosis: an endpoint someone else deployed
    (here one that cannot score the MLflow request at all) still gets the signature named first."""
    release_dir = copy(MLFLOW, tmp_path)
    mlmodel = release_dir / "model" / "MLmodel"
    edit(mlmodel, '{"type": "double", "name": "bmi"', '{"type": "long", "name": "bmi"')
    release = load_release(release_dir / "release.toml")
    options = TargetOptions(log_dir=tmp_path, url=f"{recorded.url}/score", ready_timeout=30)
    endpoint = build_endpoint(target, release, release.stage("devtest"), options)
    diagnose = endpoint.diagnose  # type: ignore[attr-defined]
    assert diagnose is not None
    cause = diagnose()
    assert cause is not None and cause.startswith(f"the MLflow signature in {mlmodel} types column 'bmi' as long")
    if target == "url":
        with pytest.raises(DeployError) as failed:
            endpoint.deploy()
        assert failed.value.answered and str(failed.value).startswith(f"{cause}; scoring the golden rows failed")
