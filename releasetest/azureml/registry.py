"""Model versions from the workspace's model registry, for artifacts the manifest does not pin.

A trigger names a model version (``--release-artifact NAME=VERSION``) that was registered after
the manifest was written, the manifest lists an artifact by reference only (``name`` and
``version``, no ``files``), or a v2 deployment names a registered model (``azureml:<name>:<version>``
in the workspace, ``azureml://registries/<registry>/models/<name>/versions/<version>`` in an Azure ML
registry). :class:`ModelRegistry` downloads that version with azure-ai-ml into
``<cache>/<name>/<version>/`` (``<cache>/registries/<registry>/<name>/<version>/``), the layout the
listed versions get, hashes every file, and, when
the version carries the ``releasetest_sha256`` tag (set when releasetest registered it), refuses
files whose digest differs from it. Its asset id and tags go into the verdict with the files.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from releasetest.azureml.workspace import SHA_TAG, ml_client, tree_digest, workspace_config_path
from releasetest.errors import ConfigError
from releasetest.files import sha256_file
from releasetest.release.manifest import ArtifactFile, RegistrySource


@dataclass
class ModelRegistry:
    """Resolves ``name:version`` in the workspace ``workspace_config`` names, or in an Azure ML
    registry; one client per workspace or registry per run."""

    workspace_config: Path
    cache: Path
    credential: Any = None
    _clients: dict[str | None, Any] = field(default_factory=dict)

    def __call__(self, name: str, version: str,
                 registry: str | None = None) -> tuple[tuple[ArtifactFile, ...], RegistrySource]:
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        if registry is None:
            where = f"model {name} version {version} in the workspace of {self.workspace_config}"
            dest = self.cache / name / version
            publish = f"register it (az ml model create --name {name} --version {version})"
        else:
            where = f"model {name} version {version} in the Azure ML registry {registry}"
            dest = self.cache / "registries" / registry / name / version
            publish = f"publish it (az ml model create --registry-name {registry} --name {name} --version {version})"
        # azure-ai-ml's own deprecation warnings (marshmallow, azure-storage-blob) are not the user's to fix.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client = self._client(registry)
            try:
                model = client.models.get(name, version)
                with tempfile.TemporaryDirectory(dir=self._tmp_root()) as tmp:
                    client.models.download(name, version, download_path=tmp)
                    got = Path(tmp) / name
                    files = sorted(p for p in got.rglob("*") if p.is_file())
                    if not files:
                        raise ConfigError(self.workspace_config, None, f"{where} has no files",
                                          "register the version with its files")
                    if dest.exists():
                        shutil.rmtree(dest)
                    dest.mkdir(parents=True)
                    for f in files:
                        shutil.move(f, dest / f.name)
            except ResourceNotFoundError:
                raise ConfigError(self.workspace_config, None, f"{where} is not registered",
                                  f"{publish} or ask for a registered version") from None
            except HttpResponseError as exc:
                raise ConfigError(self.workspace_config, None, f"{where} could not be read: {exc.message}",
                                  "check the workspace config and the credential's access to it") from None
        out = tuple(ArtifactFile(path=p.resolve(), sha256=sha256_file(p)) for p in sorted(dest.iterdir()))
        tags = {str(k): str(v) for k, v in (model.tags or {}).items()}
        pinned = tags.get(SHA_TAG)
        digest = tree_digest(tuple((f.path.name, f.path, f.sha256) for f in out))
        if pinned is not None and pinned != digest:
            raise ConfigError(self.workspace_config, None,
                              f"{where}: the downloaded files give {SHA_TAG} {digest}, the registry tags {pinned}",
                              "the registered files changed after they were tagged: register a new version")
        return out, RegistrySource(asset_id=str(model.id), tags=tags)

    def _client(self, registry: str | None) -> Any:
        """The run's MLClient for the workspace (``None``) or the registry; a registry that discovery
        does not know is a configuration error naming it."""
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        if registry not in self._clients:
            try:
                self._clients[registry] = ml_client(self.workspace_config, self.credential, registry)
            except (ResourceNotFoundError, HttpResponseError) as exc:
                raise ConfigError(self.workspace_config, None,
                                  f"the Azure ML registry {registry} could not be discovered: {exc.message}",
                                  "check the registry name in the model reference and the credential's access to "
                                  "it") from None
        return self._clients[registry]

    def _tmp_root(self) -> Path:
        """Downloads land beside the cache, so moving them in is a rename."""
        self.cache.mkdir(parents=True, exist_ok=True)
        return self.cache


def registry_for(manifest: Path, workspace_config: Path | None, cache: Path) -> ModelRegistry | None:
    """The registry of the release's workspace: ``workspace_config``, else aml_config/config.json
    beside the manifest (the same default as the azureml target); None when neither is given nor
    there, so an unlisted version is refused as not listed rather than as a missing workspace."""
    default = workspace_config_path(Path(manifest).resolve().parent, None)
    if workspace_config is None and not default.is_file():
        return None
    return ModelRegistry(workspace_config or default, cache)
