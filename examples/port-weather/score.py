"""Azure ML entry script for the port-weather release.

The model directory is laid out the way Azure ML mounts several registered
models: <AZUREML_MODEL_DIR>/<model-name>/<version>/<file>.
"""

import glob
import logging
import os

import joblib
import numpy as np
import onnxruntime as ort
from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType

logger = logging.getLogger(__name__)

scaler = None
session = None


def _version_key(path):
    version = os.path.basename(os.path.dirname(path))
    return (1, int(version), "") if version.isdigit() else (0, 0, version)


def _artifact(name, pattern):
    """Return the file of model `name` matching `pattern`, newest numeric version."""
    model_dir = os.environ["AZUREML_MODEL_DIR"]
    matches = glob.glob(os.path.join(model_dir, name, "*", pattern))
    if not matches:
        raise RuntimeError(
            f"no file matching {name}/*/{pattern} under AZUREML_MODEL_DIR={model_dir!r}"
        )
    newest = max(_version_key(m) for m in matches)
    chosen = [m for m in matches if _version_key(m) == newest]
    if len(chosen) != 1:
        raise RuntimeError(
            f"ambiguous {name}/*/{pattern} under AZUREML_MODEL_DIR={model_dir!r}: {sorted(chosen)}"
        )
    return chosen[0]


def init():
    global scaler, session
    scaler_path = _artifact("model-scaler", "*.pkl")
    model_path = _artifact("support-vector-classifier", "*.onnx")
    scaler = joblib.load(scaler_path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    logger.info("loaded %s and %s", scaler_path, model_path)


@input_schema(
    "data",
    NumpyParameterType(np.array([[23.61666667, 0.76, 12.7834, 79.0, 15.8263, 1015.66, 1.0]])),
)
@output_schema(StandardPythonParameterType({"predictions": [1], "probabilities": [[0.2, 0.8]]}))
def run(data):
    x = scaler.transform(np.asarray(data, dtype=np.float64))
    label, proba = session.run(["label", "probabilities"], {"float_input": x.astype(np.float32)})
    return {"predictions": label.tolist(), "probabilities": proba.tolist()}
