"""``releasetest azureml-plan --out DIR`` against Azure ML's published YAML schemas (vendored in
tests/data/azureml-schemas, see its README) and azure-ai-ml's own loaders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from releasetest.cli import main

from .conftest import EXAMPLE

SCHEMAS = Path(__file__).resolve().parent / "data" / "azureml-schemas"
FILES = ("model.yml", "environment.yml", "endpoint.yml", "deployment.yml")
#: The one schema error the plan keeps on purpose: a plain relative code path (README there).
CODE_PATH = ("code_configuration", "code")


def _planned(tmp_path: Path, stage: str) -> Path:
    release = tmp_path / "release"
    shutil.copytree(EXAMPLE, release, ignore=shutil.ignore_patterns("weather.csv", "__pycache__", "train.py"))
    out = tmp_path / "plan"
    assert main(["azureml-plan", str(release / "release.toml"), "--stage", stage, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.yml")) == sorted(FILES)
    return out


def _errors(doc: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    """(path, message) of every violation of the schema the document's ``$schema`` names."""
    name = str(doc["$schema"]).rsplit("/", 1)[-1]
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    return [(tuple(e.absolute_path), e.message) for e in Draft7Validator(schema).iter_errors(doc)]


@pytest.mark.parametrize("stage", ["devtest", "production"])
def test_planned_files_validate_against_azureml_schemas(tmp_path: Path, stage: str) -> None:
    out = _planned(tmp_path, stage)
    docs = {name: yaml.safe_load((out / name).read_text(encoding="utf-8")) for name in FILES}
    for name in ("model.yml", "environment.yml", "endpoint.yml"):
        assert _errors(docs[name]) == [], name
    deployment = docs["deployment.yml"]
    assert [path for path, _ in _errors(deployment)] == [CODE_PATH]
    code = out / deployment["code_configuration"]["code"]
    assert (code / deployment["code_configuration"]["scoring_script"]).is_file()
    # the validator is not vacuous: a deployment without a name is refused
    unnamed = {k: v for k, v in deployment.items() if k != "name"}
    assert any("'name' is a required property" in msg for _, msg in _errors(unnamed))


azure_ml = pytest.importorskip("azure.ai.ml", reason="the azureml extra is not installed")


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
