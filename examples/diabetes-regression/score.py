"""Azure ML entry script for the diabetes-regression release, shaped like Azure ML's own
scikit-learn samples: one registered model, so AZUREML_MODEL_DIR is the model's version folder,
and a raw run(raw_data) without inference-schema (the request body arrives as a JSON string).

Request:  {"data": [[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6], ...]}
Response: [progression, ...]
"""

import json
import os

import joblib
import numpy as np

model = None


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"))


def run(raw_data):
    data = np.asarray(json.loads(raw_data)["data"], dtype=np.float64)
    return model.predict(data).tolist()
