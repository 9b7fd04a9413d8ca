"""Train the v2 managed-sample release: StandardScaler + Ridge on scikit-learn's diabetes data, saved
as the folder model Azure's online endpoint sample deploys (model/sklearn_regression_model.pkl).

data/diabetes.csv is scikit-learn's bundled diabetes data set (BSD 3-Clause, see data/LICENSE),
written unchanged when missing. Every fifth row (index 4, 9, ...) is the holdout, the rest trains.
Deterministic: the same data and library versions give a byte-identical pickle (no randomness in the
split or in Ridge's closed-form solver). A v2 release needs no sha256 pins: the gate hashes the
model folder, the code folder and the YAML it reads, and the verdict's release id binds them.

Usage:
    python examples/v2-managed-sample/train.py [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import os

import joblib
import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = os.path.dirname(os.path.abspath(__file__))
FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
LABEL = "progression"
HOLDOUT_EVERY = 5
MODEL_FILE = "model/sklearn_regression_model.pkl"


def write_dataset(path: str) -> None:
    d = load_diabetes(scaled=False)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow([*FEATURES, LABEL])
        for x, y in zip(d.data.tolist(), d.target.tolist(), strict=True):
            w.writerow([repr(v) for v in x] + [repr(y)])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=HERE, help="example directory to write artifacts into")
    out = os.path.abspath(ap.parse_args(argv).out)
    for sub in ("model", "data"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    data_path = os.path.join(out, "data", "diabetes.csv")
    if not os.path.exists(data_path):
        write_dataset(data_path)
    with open(data_path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    hold = [r for i, r in enumerate(rows) if i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1]
    train = [r for i, r in enumerate(rows) if i % HOLDOUT_EVERY != HOLDOUT_EVERY - 1]

    def xy(rs: list[dict[str, str]]) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([[float(r[c]) for c in FEATURES] for r in rs], dtype=np.float64),
                np.array([float(r[LABEL]) for r in rs], dtype=np.float64))

    x_train, y_train = xy(train)
    x_hold, _ = xy(hold)
    model_path = os.path.join(out, MODEL_FILE)
    joblib.dump(make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(x_train, y_train), model_path)
    with open(os.path.join(out, "data", "holdout.csv"), "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow([*FEATURES, LABEL])
        for r in hold:
            w.writerow([r[c] for c in (*FEATURES, LABEL)])
    predicted = joblib.load(model_path).predict(x_hold)
    with open(os.path.join(out, "data", "expected_predictions.csv"), "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["label"])
        for p in predicted.tolist():
            w.writerow([repr(p)])
    print(f"train rows: {len(train)}  holdout rows: {len(hold)}  model: {MODEL_FILE}")


if __name__ == "__main__":
    main()
