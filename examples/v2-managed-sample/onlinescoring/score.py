"""Scoring script of the v2 managed-sample release, shaped like Azure's online endpoint sample
(cli/endpoints/online/model-1/onlinescoring/score.py): a folder model, so the model file is at
AZUREML_MODEL_DIR/model/<file> (a v2 folder model keeps its folder name), and a raw run(raw_data).

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
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "sklearn_regression_model.pkl"))


def run(raw_data):
    data = np.asarray(json.loads(raw_data)["data"], dtype=np.float64)
    return model.predict(data).tolist()
