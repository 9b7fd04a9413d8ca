"""Train the iris-multiclass release: scikit-learn's bundled iris data, string labels.

Deterministic: a fixed split and a deterministic solver, so a rerun writes byte-identical
data/*.csv and models/model.pkl (compare with sha256sum; release.toml pins the model's digest).
Run from this folder: python train.py
"""

import csv
import hashlib
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def _write(path, header, rows):
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def main():
    iris = load_iris()
    species = [str(iris.target_names[t]) for t in iris.target]
    x = iris.data.tolist()
    _write(HERE / "data" / "iris.csv", FEATURES + ["species"], [r + [s] for r, s in zip(x, species)])
    x_train, x_test, y_train, y_test = train_test_split(x, species, test_size=0.3, random_state=0,
                                                        stratify=species)
    model = LogisticRegression(max_iter=1000)
    model.fit(x_train, y_train)
    _write(HERE / "data" / "holdout.csv", FEATURES + ["species"], [r + [s] for r, s in zip(x_test, y_test)])
    _write(HERE / "data" / "expected_predictions.csv", ["label"], [[p] for p in model.predict(x_test)])
    (HERE / "models").mkdir(exist_ok=True)
    out = HERE / "models" / "model.pkl"
    joblib.dump(model, out)
    print(f"classes {[str(c) for c in model.classes_]}; holdout accuracy {model.score(x_test, y_test):.3f}")
    print(f"{out.name} sha256 {hashlib.sha256(out.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
