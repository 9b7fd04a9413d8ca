"""The Azure ML workspace a release talks to: its config.json, an MLClient for it, and the tag
that binds a registered model version to the files the gate tested.

azure-ai-ml and azure-identity are imported inside :func:`ml_client` only, so a run that never
reaches a workspace never pays their import time (seconds).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from releasetest.errors import ConfigError

#: Model tag holding :func:`tree_digest` of the registered files.
SHA_TAG = "releasetest_sha256"
WORKSPACE_KEYS = ("subscription_id", "resource_group", "workspace_name")


def tree_digest(files: tuple[tuple[str, Path, str], ...]) -> str:
    """sha256 over ``<relative path> <sha256>`` lines, sorted: one value naming a folder's content."""
    lines = "".join(f"{rel} {digest}\n" for rel, _, digest in sorted(files))
    return hashlib.sha256(lines.encode()).hexdigest()


def workspace_config_path(root: Path, given: Path | None) -> Path:
    """The workspace config a run uses: the one given, else ``aml_config/config.json`` in the
    release's folder (the azureml target, promotion and the model registry all start here)."""
    return given or root / "aml_config" / "config.json"


def read_workspace_config(path: Path) -> dict[str, str]:
    """subscription_id, resource_group and workspace_name from an Azure ML ``config.json``."""
    fix = ('write {"subscription_id": ..., "resource_group": ..., "workspace_name": ...} there '
           "(the workspace's 'Download config.json'), or pass --release-workspace-config")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, None, "Azure ML workspace config not found", fix) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(path, None, f"not readable as JSON: {exc}", fix) from None
    if not isinstance(data, dict):
        raise ConfigError(path, None, "must be a JSON object", fix)
    # The v1 SDK wrote "workspace_name"; some tools write "workspace".
    if "workspace_name" not in data and "workspace" in data:
        data["workspace_name"] = data["workspace"]
    for key in WORKSPACE_KEYS:
        if not isinstance(data.get(key), str) or not data[key]:
            raise ConfigError(path, key, "missing or empty", fix)
    return {k: data[k] for k in WORKSPACE_KEYS}


def ml_client(workspace_config: Path, credential: Any = None, registry: str | None = None) -> Any:
    """An MLClient for the workspace ``workspace_config`` names (DefaultAzureCredential unless given),
    or for the Azure ML registry ``registry``: azure-ai-ml then asks registry discovery for the
    registry's subscription, group and front end, which replace the workspace's."""
    ws = read_workspace_config(workspace_config)
    try:
        from azure.ai.ml import MLClient
        from azure.identity import DefaultAzureCredential
    except ImportError as exc:
        raise ConfigError(None, "release_target", f"azure-ai-ml is not installed ({exc})",
                          "pip install 'releasetest[azureml]'") from None
    if registry is not None:
        return MLClient(credential or DefaultAzureCredential(), ws["subscription_id"], ws["resource_group"],
                        registry_name=registry, enable_telemetry=False)
    return MLClient(credential or DefaultAzureCredential(), ws["subscription_id"], ws["resource_group"],
                    ws["workspace_name"], enable_telemetry=False)
