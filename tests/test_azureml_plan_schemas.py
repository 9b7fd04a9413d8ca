"""``releasetest azureml-plan --out DIR`` checked by Azure ML's own schemas: the ones azure-ai-ml
validates every YAML file with (the same library ``az ml ... create -f`` runs on), so a key the
service does not know, or a value of the wrong type, fails here with no network."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from releasetest.cli import main

from .conftest import EXAMPLE

FILES = ("model.yml", "environment.yml", "endpoint.yml", "deployment.yml")
azure_ml = pytest.importorskip("azure.ai.ml", reason="the azureml extra is not installed")


def _planned(tmp_path: Path, stage: str) -> Path:
    release = tmp_path / "release"
    shutil.copytree(EXAMPLE, release, ignore=shutil.ignore_patterns("weather.csv", "__pycache__", "train.py"))
    out = tmp_path / "plan"
    assert main(["azureml-plan", str(release / "release.toml"), "--stage", stage, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.yml")) == sorted(FILES)
    return out


def _load(loader: Callable[[Path], Any], path: Path) -> Any:
    with warnings.catch_warnings():  # azure-ai-ml's own deprecation warnings are not the plan's
        warnings.simplefilter("ignore")
        return loader(path)


@pytest.mark.parametrize(("name", "loader"), [("deployment.yml", "load_online_deployment"),
                                              ("endpoint.yml", "load_online_endpoint"),
                                              ("environment.yml", "load_environment"),
                                              ("model.yml", "load_model")])
def test_the_schemas_refuse_an_unknown_key(tmp_path: Path, name: str, loader: str) -> None:
    """The check is not vacuous: the same file with one key Azure ML does not know is refused."""
    out = _planned(tmp_path, "devtest")
    doc = yaml.safe_load((out / name).read_text(encoding="utf-8"))
    doc["replicas_please"] = 3
    bad = out / f"bad-{name}"
    bad.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(Exception, match="replicas_please"):
        _load(getattr(azure_ml, loader), bad)


@pytest.mark.filterwarnings("ignore:The `context` parameter is deprecated:DeprecationWarning")
@pytest.mark.parametrize("stage", ["devtest", "production"])
def test_planned_files_load_with_azure_ai_ml(tmp_path: Path, stage: str) -> None:
    out = _planned(tmp_path, stage)
    model = azure_ml.load_model(out / "model.yml")
    environment = azure_ml.load_environment(out / "environment.yml")
    endpoint = azure_ml.load_online_endpoint(out / "endpoint.yml")
    deployment = azure_ml.load_online_deployment(out / "deployment.yml")
    assert model.type == "custom_model"
    assert any(p.is_file() for p in Path(model.path).rglob("*"))
    assert environment.conda_file and environment.image
    assert deployment.endpoint_name == endpoint.name
    assert deployment.model.removeprefix("azureml:") == f"{model.name}:{model.version}"
    assert deployment.environment.removeprefix("azureml:") == f"{environment.name}:{environment.version}"
    code = Path(deployment._base_path) / deployment.code_configuration.code
    assert (code / deployment.code_configuration.scoring_script).is_file()
