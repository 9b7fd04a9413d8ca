"""Train the MLflow no-code release: StandardScaler + Ridge on scikit-learn's diabetes data, saved with
mlflow.sklearn.save_model (an MLflow model folder with MLmodel, the pickle, conda.yaml and a
signature inferred from the training columns), the way a team deploys an MLflow model to Azure ML
without a scoring script.

data/diabetes.csv is scikit-learn's bundled diabetes data set (BSD 3-Clause, see data/LICENSE),
written unchanged when missing. Every fifth row (index 4, 9, ...) is the holdout, the rest trains.
Deterministic: the pickle has no randomness (closed-form Ridge), and the two fields MLflow fills
per save (model_uuid, utc_time_created) are set from the pickle's sha256 and a fixed time, so the
same data and library versions give the same folder byte for byte.

Needs the mlflow extra: pip install 'releasetest[mlflow]'.

Usage:
    python examples/mlflow-nocode/train.py [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.metadata
import os
import shutil

import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.models import Model, infer_signature
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = os.path.dirname(os.path.abspath(__file__))
FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
LABEL = "progression"
HOLDOUT_EVERY = 5
#: MLmodel's utc_time_created, fixed so that a retrain on the same data gives the same file.
CREATED = "2026-01-01 00:00:00.000000"


def write_dataset(path: str) -> None:
    d = load_diabetes(scaled=False)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow([*FEATURES, LABEL])
        for x, y in zip(d.data.tolist(), d.target.tolist(), strict=True):
            w.writerow([repr(v) for v in x] + [repr(y)])


def pins() -> list[str]:
    """The serving requirements, pinned to what trained the model (what Azure installs for it)."""
    names = ["mlflow-skinny", "scikit-learn", "numpy", "pandas", "cloudpickle"]
    return [f"{n}=={importlib.metadata.version(n)}" for n in names]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=HERE, help="example directory to write artifacts into")
    out = os.path.abspath(ap.parse_args(argv).out)
    os.makedirs(os.path.join(out, "data"), exist_ok=True)
    data_path = os.path.join(out, "data", "diabetes.csv")
    if not os.path.exists(data_path):
        write_dataset(data_path)
    frame = pd.read_csv(data_path)
    hold = frame.iloc[HOLDOUT_EVERY - 1::HOLDOUT_EVERY]
    train = frame.drop(index=hold.index)
    model = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(train[FEATURES], train[LABEL])

    model_dir = os.path.join(out, "model")
    shutil.rmtree(model_dir, ignore_errors=True)
    signature = infer_signature(train[FEATURES], model.predict(train[FEATURES]))
    mlflow.sklearn.save_model(model, model_dir, signature=signature, pip_requirements=pins(),
                              serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_PICKLE)
    with open(os.path.join(model_dir, "model.pkl"), "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    meta = Model.load(os.path.join(model_dir, "MLmodel"))
    meta.model_uuid = digest[:32]
    meta.utc_time_created = CREATED
    meta.save(os.path.join(model_dir, "MLmodel"))

    hold.to_csv(os.path.join(out, "data", "holdout.csv"), index=False, lineterminator="\n",
                columns=[*FEATURES, LABEL])
    served = mlflow.pyfunc.load_model(model_dir).predict(hold[FEATURES])
    with open(os.path.join(out, "data", "expected_predictions.csv"), "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["label"])
        for p in np.asarray(served).tolist():
            w.writerow([repr(p)])
    print(f"train rows: {len(train)}  holdout rows: {len(hold)}  model: model/ (sha256 of model.pkl {digest})")


if __name__ == "__main__":
    main()
