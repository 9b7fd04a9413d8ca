"""Train the diabetes-regression example release (StandardScaler + Ridge, one pickled pipeline).

The data is scikit-learn's bundled diabetes data set (442 patients, 10 baseline measurements,
the label a measure of disease progression one year later), unscaled, copied to
data/diabetes.csv so the release does not depend on the installed scikit-learn's copy. Every
fifth row (index 4, 9, ...) is the holdout, the rest trains the model.

Deterministic: the same diabetes.csv and the same library versions give byte-identical
artifacts (no randomness in the split or in Ridge's closed-form solver).

Usage:
    python examples/diabetes-regression/train.py [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import re
import sys

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
RIDGE_ALPHA = 1.0

DATA_FILE = "data/diabetes.csv"
MODEL_FILE = "models/model.pkl"
HOLDOUT_FILE = "data/holdout.csv"
EXPECTED_FILE = "data/expected_predictions.csv"


def write_dataset(path):
    """Copy scikit-learn's bundled data set, unscaled, as it ships (values written by repr)."""
    d = load_diabetes(scaled=False)
    if list(d.feature_names) != FEATURES:
        sys.exit(f"unexpected diabetes columns {d.feature_names}")
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow([*FEATURES, LABEL])
        for x, y in zip(d.data.tolist(), d.target.tolist()):
            w.writerow([repr(v) for v in x] + [repr(y)])


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def update_manifest(path, rel, digest):
    """Rewrite the sha256 of the model file's entry in release.toml."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    pattern = re.compile(r'(\{\s*path\s*=\s*"' + re.escape(rel) + r'"\s*,\s*sha256\s*=\s*")[0-9a-fA-F<>a-z]*(")')
    text, n = pattern.subn(lambda m: m.group(1) + digest + m.group(2), text)
    if n != 1:
        sys.exit(f"{path}: expected one files entry for {rel}, found {n}")
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=HERE, help="example directory to write artifacts into")
    args = ap.parse_args(argv)
    out = os.path.abspath(args.out)
    os.makedirs(os.path.join(out, "models"), exist_ok=True)
    os.makedirs(os.path.join(out, "data"), exist_ok=True)
    data_path = os.path.join(out, DATA_FILE)
    if not os.path.exists(data_path):
        write_dataset(data_path)

    with open(data_path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    holdout_rows = [r for i, r in enumerate(rows) if i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1]
    train_rows = [r for i, r in enumerate(rows) if i % HOLDOUT_EVERY != HOLDOUT_EVERY - 1]

    def xy(rs):
        return (np.array([[float(r[c]) for c in FEATURES] for r in rs], dtype=np.float64),
                np.array([float(r[LABEL]) for r in rs], dtype=np.float64))

    x_train, y_train = xy(train_rows)
    x_hold, y_hold = xy(holdout_rows)
    model = make_pipeline(StandardScaler(), Ridge(alpha=RIDGE_ALPHA)).fit(x_train, y_train)

    model_path = os.path.join(out, MODEL_FILE)
    joblib.dump(model, model_path)

    with open(os.path.join(out, HOLDOUT_FILE), "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow([*FEATURES, LABEL])
        for r in holdout_rows:
            w.writerow([r[c] for c in (*FEATURES, LABEL)])

    # Expected predictions: the serving path of score.py (the saved pickle on float64 rows).
    predicted = joblib.load(model_path).predict(x_hold)
    with open(os.path.join(out, EXPECTED_FILE), "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["label"])
        for p in predicted.tolist():
            w.writerow([repr(p)])

    update_manifest(os.path.join(out, "release.toml"), MODEL_FILE, sha256(model_path))

    def report(name, pred):
        err = y_hold - pred
        r2 = 1 - float((err ** 2).sum()) / float(((y_hold - y_hold.mean()) ** 2).sum())
        print(f"{name:>10}: MAE {np.abs(err).mean():7.3f}  RMSE {np.sqrt((err ** 2).mean()):7.3f}  "
              f"R2 {r2:6.4f}  max error {np.abs(err).max():7.3f}")

    print(f"train rows: {len(train_rows)}  holdout rows: {len(holdout_rows)}")
    report("ridge", predicted)
    report("mean", np.full_like(y_hold, y_hold.mean()))
    report("median", np.full_like(y_hold, np.median(y_hold)))
    print(f"sha256 {MODEL_FILE}: {sha256(model_path)}")


if __name__ == "__main__":
    main()
