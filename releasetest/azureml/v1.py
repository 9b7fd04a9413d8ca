"""Azure ML v1 config files (InferenceConfig.yml, ACI/AKS deployment configs): their keys, and the
fields the harness acts on. Read with the safe YAML loader and checked key by key, so a typo fails
here, naming the file and key."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from releasetest.errors import ConfigError
from releasetest.files import load_yaml
from releasetest.tables import check_mapping, typename

#: v1 default scoring timeout (ACI and AKS web services) when the deployment config sets none.
V1_DEFAULT_SCORING_TIMEOUT_MS = 60_000


_RESOURCES = {"cpu": "number", "memoryInGB": "number", "gpu": "int", "cpuLimit": "number",
              "memoryInGBLimit": "number"}


_AUTOSCALER = {"autoscaleEnabled": "bool", "minReplicas": "int", "maxReplicas": "int",
               "refreshPeriodInSeconds": "int", "targetUtilization": "int"}


_PROBE = {"periodSeconds": "int", "initialDelaySeconds": "int", "timeoutSeconds": "int",
          "successThreshold": "int", "failureThreshold": "int"}


#: Keys of the Azure ML v1 deployment configuration files (ACI, AKS, local web service).
DEPLOYMENT_SCHEMA: dict[str, Any] = {
    "computeType": "str",
    "containerResourceRequirements": _RESOURCES,
    "authEnabled": "bool",
    "tokenAuthEnabled": "bool",
    "sslEnabled": "bool",
    "sslCertificate": "str",
    "sslKey": "str",
    "sslCname": "str",
    "cname": "str",
    "appInsightsEnabled": "bool",
    "collectModelData": "bool",
    "location": "str",
    "dnsNameLabel": "str",
    "description": "str",
    "tags": "mapping",
    "properties": "mapping",
    "primaryKey": "str",
    "secondaryKey": "str",
    "autoScaler": _AUTOSCALER,
    "numReplicas": "int",
    "scoringTimeoutMs": "int",
    "replicaMaxConcurrentRequests": "int",
    "maxConcurrentRequestsPerContainer": "int",
    "maxQueueWaitMs": "int",
    "namespace": "str",
    "computeTargetName": "str",
    "gpuCores": "int",
    "livenessProbeRequirements": _PROBE,
    "environmentVariables": "mapping",
    "vnetName": "str",
    "subnetName": "str",
    "port": "int",
}


INFERENCE_SCHEMA: dict[str, Any] = {
    "entryScript": "str",
    "runtime": "str",
    "condaFile": "str",
    "sourceDirectory": "str",
    "extraDockerfileSteps": "str",
    "schemaFile": "str",
    "enableGpu": "bool",
    "baseImage": "str",
    "baseImageRegistry": {"address": "str", "username": "str", "password": "str"},
    "cudaVersion": "str",
    "description": "str",
    "dependencies": "str",
}


@dataclass(frozen=True)
class InferenceConfig:
    path: Path
    entry_script: Path
    runtime: str
    conda_file: Path | None
    raw: dict[str, Any]


@dataclass(frozen=True)
class DeploymentConfig:
    """A v1 ACI/AKS deployment config; the fields the harness acts on, plus the raw mapping."""

    path: Path
    compute_type: str | None
    cpu: float
    memory_gb: float | None
    auth_enabled: bool
    ssl_enabled: bool
    app_insights_enabled: bool
    scoring_timeout_ms: int
    scoring_timeout_from_config: bool
    max_concurrent_requests_per_container: int | None
    max_queue_wait_ms: int | None
    autoscaler: dict[str, Any] | None
    raw: dict[str, Any]

    @property
    def worker_count(self) -> int:
        """One server worker per whole core requested, at least one."""
        return max(1, math.floor(self.cpu))


def parse_deployment_config(path: Path, referenced_from: Path, key: str) -> DeploymentConfig:
    data = load_yaml(path, referenced_from, key)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, None, f"expected a mapping of settings, got {typename(data)}",
                          "write it as 'key: value' lines, e.g. 'authEnabled: False'")
    check_mapping(data, DEPLOYMENT_SCHEMA, path)
    res = data.get("containerResourceRequirements") or {}
    cpu = res.get("cpu", 0.1)
    if cpu is not None and cpu <= 0:
        raise ConfigError(path, "containerResourceRequirements.cpu", f"must be positive, got {cpu}",
                          "set the cores the container gets, e.g. 1")
    for k in ("scoringTimeoutMs", "maxConcurrentRequestsPerContainer", "maxQueueWaitMs"):
        if data.get(k) is not None and data[k] <= 0:
            raise ConfigError(path, k, f"must be positive, got {data[k]}", "remove it or set a positive value")
    timeout = data.get("scoringTimeoutMs")
    return DeploymentConfig(
        path=path,
        compute_type=data.get("computeType"),
        cpu=float(cpu if cpu is not None else 0.1),
        memory_gb=res.get("memoryInGB"),
        auth_enabled=bool(data.get("authEnabled", False)),
        ssl_enabled=bool(data.get("sslEnabled", False)),
        app_insights_enabled=bool(data.get("appInsightsEnabled", False)),
        scoring_timeout_ms=int(timeout) if timeout is not None else V1_DEFAULT_SCORING_TIMEOUT_MS,
        scoring_timeout_from_config=timeout is not None,
        max_concurrent_requests_per_container=data.get("maxConcurrentRequestsPerContainer"),
        max_queue_wait_ms=data.get("maxQueueWaitMs"),
        autoscaler=data.get("autoScaler"),
        raw=data,
    )


def parse_inference_config(path: Path, referenced_from: Path) -> InferenceConfig:
    data = load_yaml(path, referenced_from, "release.inference_config")
    if not isinstance(data, dict):
        raise ConfigError(path, None, f"expected a mapping, got {typename(data)}",
                          "write 'entryScript: score.py', 'runtime: python', 'condaFile: myenv.yml'")
    check_mapping(data, INFERENCE_SCHEMA, path)
    entry = data.get("entryScript")
    if not entry:
        raise ConfigError(path, "entryScript", "missing", "name the scoring script, e.g. 'entryScript: score.py'")
    base = path.parent / (data.get("sourceDirectory") or ".")
    entry_path = (base / entry).resolve()
    if not entry_path.is_file():
        raise ConfigError(path, "entryScript", f"entry script not found at {entry_path}",
                          "fix the path (relative to sourceDirectory, or to this file)")
    runtime = data.get("runtime") or "python"
    if runtime.lower() != "python":
        raise ConfigError(path, "runtime", f"unsupported runtime {runtime!r}", "use 'runtime: python'")
    conda = data.get("condaFile")
    conda_path = None
    if conda:
        conda_path = (path.parent / conda).resolve()
        env = load_yaml(conda_path, path, "condaFile")
        if not isinstance(env, dict) or not isinstance(env.get("dependencies"), list):
            raise ConfigError(conda_path, "dependencies", "a conda environment file needs a 'dependencies' list",
                              "list python=3.x and a pip section")
    return InferenceConfig(path=path, entry_script=entry_path, runtime=runtime, conda_file=conda_path, raw=data)

