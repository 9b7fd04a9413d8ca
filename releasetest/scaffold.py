"""``releasetest init DIR``: a release folder to fill in.

It is a working release on scikit-learn's bundled wine data (no download), so that the first gate
can pass within minutes once ``train.py`` has run and the digests are pinned; every place a user
replaces with their own model says so in a ``FILL IN`` comment. Before ``train.py`` runs, the gate
stops at the first file that is missing and names the command that writes it.
"""

from __future__ import annotations

from pathlib import Path

from releasetest.errors import ReleaseTestError

#: scikit-learn's wine data, its columns as train.py writes them ("/" made "_").
FEATURES = ("alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols", "flavanoids",
            "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue", "od280_od315_of_diluted_wines",
            "proline")
EXAMPLE_ROW = "[[14.23, 1.71, 2.43, 15.6, 127.0, 2.8, 3.06, 0.28, 2.29, 5.64, 1.04, 3.92, 1065.0]]"

#: The ``[data]`` and ``[load]`` tables both manifests end with.
_DATA = '''[data]
holdout = "data/holdout.csv"                     # rows the model never saw in training, with the true label
features = {features}   # FILL IN: your model's input columns, in the order run() takes them
label = "label"                                  # FILL IN: the column with the true label
classes = [0, 1, 2]                              # FILL IN: the labels, or delete for a regression
expected_predictions = "data/expected_predictions.csv"   # what the model said at training time (parity)
golden_rows = 5
'''
_LOAD = '''[load]
rate = 10                                        # FILL IN: requests per second production expects
duration_s = 5
'''

MANIFEST_V1 = '''# Release manifest read by releasetest (docs/reference.md). Paths are relative to this file.
# First gate, in this folder:
#   python train.py                              # writes models/, data/holdout.csv, data/expected_predictions.csv
#   releasetest hash --write release.toml        # pins the model files' sha256 below
#   pytest --release-stage devtest               # deploys locally, runs the suites, writes releasetest-out/
[release]
name = "{name}"                                # FILL IN: your release's name
inference_config = "InferenceConfig.yml"        # Azure ML v1: entry script and conda file

[stages.devtest]                                 # the stage the gate tests in
deployment_config = "AciDeploymentConfig.yml"

[stages.production]                              # where a PROMOTE goes: releasetest promote --from devtest
deployment_config = "AksDeploymentConfig.yml"
requires_approval = true                         # a reviewer approves first: releasetest approve --by NAME

# Each model file score.py loads, pinned by digest: the served files are the tested ones.
# Azure ML mounts it as $AZUREML_MODEL_DIR/<name>/<version>/<file>.
[[artifacts]]
name = "model"                                   # FILL IN: your registered model's name
version = 1
files = [{{ path = "models/model.pkl", sha256 = "" }}]   # sha256: releasetest hash --write release.toml

''' + _DATA + '''
# Model quality through the endpoint (docs/acceptance.md): leave the table out to get the default
# bars against naive baselines; your own bars, e.g.:
# [acceptance.thresholds]
# accuracy = {{ min = 0.9, min_absolute_change = {{ majority = 0.2 }} }}

''' + _LOAD

MANIFEST_V2 = '''# Release manifest read by releasetest (docs/reference.md). Paths are relative to this file.
# An Azure ML v2 release: the online deployment YAML names the model, the scoring script and the
# environment (docs/azureml.md, "v2 releases"). First gate, in this folder:
#   python train.py                              # writes model/, data/holdout.csv, data/expected_predictions.csv
#   pytest --release-stage devtest               # deploys locally, runs the suites, writes releasetest-out/
[release]
name = "{name}"                                # FILL IN: your release's name

[stages.devtest]                                 # the stage the gate tests in
deployment = "blue-deployment.yml"
endpoint = "endpoint.yml"

[stages.production]                              # where a PROMOTE goes: releasetest promote --from devtest
deployment = "blue-deployment.yml"
endpoint = "endpoint.yml"
requires_approval = true                         # a reviewer approves first: releasetest approve --by NAME

''' + _DATA + "\n" + _LOAD

INFERENCE_CONFIG = """entryScript: score.py
runtime: python
condaFile: myenv.yml
"""

#: Pinned: the serving environment is checked against these (docs/environment.md).
CONDA = """name: {name}-inference
channels:
  - conda-forge
dependencies:
  - python=3.11
  - pip
  - pip:
      # FILL IN: every package score.py and the pickled model need, pinned to the versions train.py used
      - numpy=={numpy}
      - scikit-learn=={sklearn}
      - joblib=={joblib}
      - inference-schema==1.8
      - azureml-inference-server-http==1.5.1
"""

ACI = """computeType: ACI
containerResourceRequirements:
  cpu: 1
  memoryInGB: 1
authEnabled: False
sslEnabled: False
appInsightsEnabled: False
"""

AKS = """computeType: AKS
autoScaler:
  autoscaleEnabled: False
numReplicas: 1
containerResourceRequirements:
  cpu: 1
  memoryInGB: 1
authEnabled: True
scoringTimeoutMs: 1000
maxConcurrentRequestsPerContainer: 1
"""

ENDPOINT_V2 = """$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
name: {name}
auth_mode: key
"""

DEPLOYMENT_V2 = """$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: {name}
model:
  path: model/model.pkl
code_configuration:
  code: onlinescoring
  scoring_script: score.py
environment:
  conda_file: environment/conda.yaml
  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest
instance_type: Standard_DS3_v2
instance_count: 1
"""

SCORE = '''"""Entry script: Azure ML calls init() once per worker, then run() per request.

FILL IN: load your own model in init() and turn the request into its input in run().
"""

import glob
import os

import joblib
import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema

model = None


def init():
    global model
    # {where}
    matches = glob.glob(os.path.join(os.environ["AZUREML_MODEL_DIR"], "**", "model.pkl"), recursive=True)
    if len(matches) != 1:
        raise RuntimeError(f"expected one model.pkl under AZUREML_MODEL_DIR, found {{matches}}")
    model = joblib.load(matches[0])


# The published example: one row of the features, in the manifest's order (FILL IN with one of yours).
@input_schema("data", NumpyParameterType(np.array({example})))
@output_schema(StandardPythonParameterType({{"predictions": [0], "probabilities": [[0.8, 0.1, 0.1]]}}))
def run(data):
    rows = np.asarray(data, dtype=np.float64)
    return {{"predictions": model.predict(rows).tolist(), "probabilities": model.predict_proba(rows).tolist()}}
'''

TRAIN = '''"""Train the model and write what the release ships and the gate reads.

FILL IN: replace the wine data and the pipeline with your own. Keep the three outputs:
  {model}                          the model score.py loads
  data/holdout.csv                 rows kept out of training: the features and the true label
  data/expected_predictions.csv    the model's predictions on those rows, as training saw them
Then pin the model's digest: releasetest hash --write release.toml{pin_note}
"""

from pathlib import Path

import joblib
import pandas as pd
from sklearn.datasets import load_wine
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).resolve().parent

data = load_wine(as_frame=True).frame
data.columns = [c.replace("/", "_") for c in data.columns]
data = data.rename(columns={{"target": "label"}})
features = [c for c in data.columns if c != "label"]
train, holdout = train_test_split(data, test_size=0.3, random_state=0, stratify=data["label"])

model = make_pipeline(StandardScaler(), GradientBoostingClassifier(random_state=0))
model.fit(train[features].to_numpy(), train["label"])

(HERE / "{model_dir}").mkdir(exist_ok=True)
(HERE / "data").mkdir(exist_ok=True)
joblib.dump(model, HERE / "{model}")
holdout.to_csv(HERE / "data" / "holdout.csv", index=False)
pd.DataFrame({{"label": model.predict(holdout[features].to_numpy())}}).to_csv(
    HERE / "data" / "expected_predictions.csv", index=False)
print(f"holdout accuracy {{(model.predict(holdout[features].to_numpy()) == holdout['label']).mean():.3f}} "
      f"on {{len(holdout)}} rows; wrote {model}, data/holdout.csv, data/expected_predictions.csv")
'''

README = """# {name}

A release for releasetest, made by `releasetest init`. Every `FILL IN` marks what to replace with
your own model; as it is, it trains scikit-learn's wine data.

    python train.py{pin}
    pytest --release-stage devtest
    open releasetest-out/report.html
"""


def _versions() -> dict[str, str]:
    """The versions train.py will use here, pinned in the conda file (a pickle loads safely only
    under the scikit-learn and joblib it was written with)."""
    from importlib import metadata

    found = {}
    for dist, key in (("numpy", "numpy"), ("scikit-learn", "sklearn"), ("joblib", "joblib")):
        try:
            found[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[key] = "FILL-IN"
    return found


def files_for(name: str, v2: bool) -> dict[str, str]:
    """Each file of a new release folder, by path relative to it."""
    features = "[" + ", ".join(f'"{f}"' for f in FEATURES) + "]"
    conda = CONDA.format(name=name, **_versions())
    if v2:
        return {
            "release.toml": MANIFEST_V2.format(name=name, features=features),
            "endpoint.yml": ENDPOINT_V2.format(name=name),
            "blue-deployment.yml": DEPLOYMENT_V2.format(name=name),
            "environment/conda.yaml": conda,
            "onlinescoring/score.py": SCORE.format(example=EXAMPLE_ROW, where="the v2 deployment's model "
                                                   "(model/model.pkl) is mounted under AZUREML_MODEL_DIR"),
            "train.py": TRAIN.format(model="model/model.pkl", model_dir="model",
                                     pin_note=" (v2: the deployment YAML names the model; nothing to pin)"),
            "README.md": README.format(name=name, pin=""),
        }
    return {
        "release.toml": MANIFEST_V1.format(name=name, features=features),
        "InferenceConfig.yml": INFERENCE_CONFIG,
        "myenv.yml": conda,
        "AciDeploymentConfig.yml": ACI,
        "AksDeploymentConfig.yml": AKS,
        "score.py": SCORE.format(example=EXAMPLE_ROW, where="[[artifacts]] model version 1 is mounted as "
                                 "AZUREML_MODEL_DIR/model/1/model.pkl"),
        "train.py": TRAIN.format(model="models/model.pkl", model_dir="models", pin_note=""),
        "README.md": README.format(name=name, pin="\n    releasetest hash --write release.toml"),
    }


def init_release(folder: Path, name: str | None = None, v2: bool = False) -> list[Path]:
    """Write a new release folder; refuses a folder that has files in it (nothing is overwritten)."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ReleaseTestError(f"{folder}: exists and is not an empty folder; init writes a new release "
                               "folder and overwrites nothing (give a new path)")
    name = name or folder.resolve().name
    written = []
    for rel, text in files_for(name, v2).items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
