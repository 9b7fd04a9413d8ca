"""Scoring script for an MLflow model deployed without code_configuration, as Azure ML's no-code
deployment serves one: the model is loaded with ``mlflow.pyfunc`` from ``AZUREML_MODEL_DIR`` (the
model folder keeps its name under it), a request is ``{"input_data": {"columns", "index", "data"}}``
(a pandas DataFrame in the split orientation) or ``{"input_data": [[...], ...]}``, and the answer is
the model's predictions as a JSON list.

A body that is not that shape, or that the model's signature refuses, gets 400 with the reason (as
MLflow's own scoring server answers a schema error); any other failure of ``predict`` raises, and
azmlinfsrv answers 500. Runs inside the inference server, so it imports only what serving needs.
"""

import json
import os
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from azureml_inference_server_http.api.aml_response import AMLResponse
from mlflow.exceptions import MlflowException

#: The loaded pyfunc model; set by init(), which azmlinfsrv calls before any run().
model: Any = None


def _model_folder(root: Path) -> Path:
    """The folder holding the MLmodel file: AZUREML_MODEL_DIR itself or the model's folder under it."""
    if (root / "MLmodel").is_file():
        return root
    found = sorted(p.parent for p in root.glob("*/MLmodel"))
    if len(found) != 1:
        raise FileNotFoundError(f"expected one MLflow model (a folder with an MLmodel file) under {root}, "
                                f"found {len(found)}")
    return found[0]


def init():
    global model
    model = mlflow.pyfunc.load_model(str(_model_folder(Path(os.environ["AZUREML_MODEL_DIR"]))))


def _bad(message):
    return AMLResponse(json.dumps({"message": message}), 400, json_str=True)


def _jsonable(predictions):
    if isinstance(predictions, pd.DataFrame):
        return predictions.to_dict(orient="records")
    if isinstance(predictions, (pd.Series, np.ndarray)):
        return predictions.tolist()
    return predictions


def run(raw_data):
    try:
        body = json.loads(raw_data)
    except ValueError as exc:
        return _bad(f"the body is not JSON: {exc}")
    if not isinstance(body, dict) or "input_data" not in body:
        return _bad("the request must hold the rows under a top-level key named 'input_data'")
    given = body["input_data"]
    try:
        if isinstance(given, dict):
            frame = pd.DataFrame(given.get("data"), columns=given.get("columns"), index=given.get("index"))
        elif isinstance(given, list):
            frame = pd.DataFrame(given)
        else:
            return _bad("input_data must be {'columns': [...], 'index': [...], 'data': [[...]]} or a list of rows")
    except (ValueError, TypeError) as exc:
        return _bad(f"input_data does not make a table: {exc}")
    try:
        predictions = model.predict(frame)
    except MlflowException as exc:
        return _bad(f"the model's signature refuses the input: {exc.message}")
    return _jsonable(predictions)
