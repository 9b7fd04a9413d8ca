"""Artifacts from the workspace's model registry: the real azure-ai-ml client downloads a model
version from the loopback ARM stand-in (model asset, datastore, blobs) and the release records it."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from releasetest.azureml.registry import ModelRegistry
from releasetest.azureml.workspace import SHA_TAG, tree_digest
from releasetest.errors import ConfigError
from releasetest.release.manifest import load_release

from .conftest import EXAMPLE
from .test_v2_release import SAMPLE

pytest.importorskip("azure.ai.ml", reason="the azureml extra is not installed")
standin = pytest.importorskip("tests.azure_standin", reason="trustme is not installed")

#: azure-ai-ml's schemas still use marshmallow's deprecated ``context``; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:The `context` parameter is deprecated:DeprecationWarning")

SVC = "support-vector-classifier"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    dest = tmp_path / "release"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("weather.csv", "__pycache__", "train.py"))
    (dest / "aml_config").mkdir()
    (dest / "aml_config" / "config.json").write_text(json.dumps(standin.WORKSPACE_CONFIG))
    return dest


@pytest.fixture
def arm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[standin.AzureStandin]:
    """The stand-in, reached by this process's DefaultAzureCredential and MLClient through the
    environment (the same public knobs a CI job sets)."""
    with standin.AzureStandin() as server:
        for key, value in server.client_env(tmp_path / "client").items():
            monkeypatch.setenv(key, value)
        yield server


def _registry(root: Path) -> ModelRegistry:
    return ModelRegistry(root / "aml_config" / "config.json", root / "out" / "registry")


def test_unlisted_version_is_downloaded_hashed_and_recorded(example: Path, arm: standin.AzureStandin) -> None:
    onnx = (example / "models" / f"{SVC}.onnx").read_bytes()
    digest = hashlib.sha256(onnx).hexdigest()
    tag = tree_digest(((f"{SVC}.onnx", Path(), digest),))
    arm.register_model(SVC, "2", {SHA_TAG: tag, "trained_by": "nightly"}, files={f"{SVC}.onnx": onnx})
    release = load_release(example / "release.toml", artifact_versions={SVC: "2"}, registry=_registry(example))
    art = next(a for a in release.artifacts if a.name == SVC)
    assert art.version == "2"
    assert [f.path for f in art.files] == [(example / "out" / "registry" / SVC / "2" / f"{SVC}.onnx").resolve()]
    assert [f.sha256 for f in art.files] == [digest]
    described = next(a for a in release.describe()["artifacts"] if a["name"] == SVC)
    assert described["registry"] == {"asset_id": f"{standin.WS_PATH}/models/{SVC}/versions/2",
                                     "tags": {SHA_TAG: tag, "trained_by": "nightly"}}
    assert described["files"][0]["sha256"] == digest
    # The other artifact still comes from the manifest, unchanged.
    scaler = next(a for a in release.describe()["artifacts"] if a["name"] == "model-scaler")
    assert "registry" not in scaler and scaler["files"][0]["path"] == "models/model-scaler.pkl"
    assert arm.requests("GET", rf"/models/{SVC}/versions/2$")


def test_manifest_lists_a_registry_reference_only(example: Path, arm: standin.AzureStandin) -> None:
    manifest = example / "release.toml"
    text = manifest.read_text()
    start = text.index(f'name = "{SVC}"')
    end = text.index("\n", text.index("files = ", start))
    manifest.write_text(text[:start] + f'name = "{SVC}"\nversion = 3' + text[end:])
    with pytest.raises(ConfigError, match=rf"artifacts\[{SVC}\]: version 3 is listed by registry reference only"):
        load_release(manifest)
    arm.register_model(SVC, "3", {}, files={f"{SVC}.onnx": b"new weights"})
    release = load_release(manifest, registry=_registry(example))
    art = next(a for a in release.artifacts if a.name == SVC)
    assert art.version == "3" and art.files[0].sha256 == hashlib.sha256(b"new weights").hexdigest()
    assert art.files[0].path.read_bytes() == b"new weights"


def test_registry_refuses_files_that_differ_from_their_tag_and_missing_versions(
        example: Path, arm: standin.AzureStandin) -> None:
    arm.register_model(SVC, "4", {SHA_TAG: "0" * 64}, files={f"{SVC}.onnx": b"tampered"})
    with pytest.raises(ConfigError, match=f"model {SVC} version 4 .*: the downloaded files give {SHA_TAG} "):
        load_release(example / "release.toml", artifact_versions={SVC: "4"}, registry=_registry(example))
    with pytest.raises(ConfigError, match=f"model {SVC} version 9 in the workspace of .* is not registered"):
        load_release(example / "release.toml", artifact_versions={SVC: "9"}, registry=_registry(example))


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """The v2 sample whose deployment names a model in the Azure ML registry ``shared-reg``."""
    dest = tmp_path / "release"
    shutil.copytree(SAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", "train.py"))
    (dest / "aml_config").mkdir()
    (dest / "aml_config" / "config.json").write_text(json.dumps(standin.WORKSPACE_CONFIG))
    deployment = dest / "blue-deployment.yml"
    deployment.write_text(deployment.read_text().replace(
        "model:\n  path: model/", "model: azureml://registries/shared-reg/models/diabetes-model/versions/3"))
    return dest


def test_a_model_in_an_azure_ml_registry_is_fetched_hashed_and_recorded(sample: Path,
                                                                        arm: standin.AzureStandin) -> None:
    """azure-ai-ml's own registry client (discovery, the registry's model version, its data reference,
    a SAS download), against the stand-in, as for a workspace model."""
    pkl = (SAMPLE / "model" / "sklearn_regression_model.pkl").read_bytes()
    digest = hashlib.sha256(pkl).hexdigest()
    tag = tree_digest((("sklearn_regression_model.pkl", Path(), digest),))
    arm.register_registry_model("shared-reg", "diabetes-model", "3", {SHA_TAG: tag},
                                files={"sklearn_regression_model.pkl": pkl})
    release = load_release(sample / "release.toml", registry=_registry(sample))
    [model] = release.artifacts
    cached = sample / "out" / "registry" / "registries" / "shared-reg" / "diabetes-model" / "3"
    assert [(f.path, f.sha256) for f in model.files] == [((cached / "sklearn_regression_model.pkl").resolve(), digest)]
    assert release.describe()["artifacts"][0]["registry"] == {
        "asset_id": "azureml://registries/shared-reg/models/diabetes-model/versions/3", "tags": {SHA_TAG: tag}}
    assert arm.requests("GET", r"^/registrymanagement/v1\.0/registries/shared-reg/discovery$")
    assert arm.requests("POST", r"/registries/shared-reg/datarefs/diabetes-model/versions/3$")
    assert not arm.requests(pattern=r"/workspaces/ws-1/models/"), "a registry model is not looked up in the workspace"

    arm.register_registry_model("shared-reg", "diabetes-model", "4", {SHA_TAG: "0" * 64}, files={"m.pkl": b"x"})
    edit = sample / "blue-deployment.yml"
    edit.write_text(edit.read_text().replace("versions/3", "versions/4"))
    with pytest.raises(ConfigError, match="model diabetes-model version 4 in the Azure ML registry shared-reg: "
                       f"the downloaded files give {SHA_TAG} "):
        load_release(sample / "release.toml", registry=_registry(sample))
    edit.write_text(edit.read_text().replace("versions/4", "versions/9"))
    with pytest.raises(ConfigError, match=r"model diabetes-model version 9 in the Azure ML registry shared-reg is not "
                       r"registered \(fix: publish it \(az ml model create --registry-name shared-reg "):
        load_release(sample / "release.toml", registry=_registry(sample))
    edit.write_text(edit.read_text().replace("registries/shared-reg/", "registries/no-such-reg/"))
    with pytest.raises(ConfigError, match="the Azure ML registry no-such-reg could not be discovered: "):
        load_release(sample / "release.toml", registry=_registry(sample))
