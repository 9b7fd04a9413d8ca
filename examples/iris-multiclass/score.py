"""Azure ML entry script for the iris-multiclass release.

One registered model, so Azure ML sets AZUREML_MODEL_DIR to that model's own folder and the
file is joined to it directly. The input is a pandas records list (inference-schema's
PandasParameterType, orient "records"); the answer carries the species and the probabilities
in the order of model.classes_ (setosa, versicolor, virginica).
"""

import logging
import os

import joblib
import pandas as pd
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema

logger = logging.getLogger(__name__)

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
model = None


def init():
    global model
    path = os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl")
    model = joblib.load(path)
    logger.info("loaded %s", path)


@input_schema(
    "data",
    PandasParameterType(
        pd.DataFrame([{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]),
        orient="records",
    ),
)
@output_schema(StandardPythonParameterType({"predictions": ["setosa"], "probabilities": [[0.97, 0.03, 0.0]]}))
def run(data):
    x = data[FEATURES].to_numpy(dtype="float64")
    return {"predictions": [str(p) for p in model.predict(x)], "probabilities": model.predict_proba(x).tolist()}
