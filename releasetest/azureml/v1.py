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
from releasetest.tables import Key, Table, check, typename

#: v1 default scoring timeout (ACI and AKS web services) when the deployment config sets none.
V1_DEFAULT_SCORING_TIMEOUT_MS = 60_000


_POSITIVE = "remove it or set a positive value"


_RESOURCES = Table({
    "cpu": Key("number", "the cores the container gets", default=0.1, gt=0, example=1),
    "memoryInGB": Key("number"),
    "gpu": Key("int"),
    "cpuLimit": Key("number"),
    "memoryInGBLimit": Key("number"),
})


_AUTOSCALER = Table({"autoscaleEnabled": Key("bool"), "minReplicas": Key("int"), "maxReplicas": Key("int"),
                     "refreshPeriodInSeconds": Key("int"), "targetUtilization": Key("int")})


_PROBE = Table({"periodSeconds": Key("int"), "initialDelaySeconds": Key("int"), "timeoutSeconds": Key("int"),
                "successThreshold": Key("int"), "failureThreshold": Key("int")})


#: Keys of the Azure ML v1 deployment configuration files (ACI, AKS, local web service).
DEPLOYMENT_SCHEMA = Table({
    "computeType": Key("str"),
    "containerResourceRequirements": _RESOURCES,
    "authEnabled": Key("bool", default=False),
    "tokenAuthEnabled": Key("bool"),
    "sslEnabled": Key("bool", default=False),
    "sslCertificate": Key("str"),
    "sslKey": Key("str"),
    "sslCname": Key("str"),
    "cname": Key("str"),
    "appInsightsEnabled": Key("bool", default=False),
    "collectModelData": Key("bool"),
    "location": Key("str"),
    "dnsNameLabel": Key("str"),
    "description": Key("str"),
    "tags": Key("mapping"),
    "properties": Key("mapping"),
    "primaryKey": Key("str"),
    "secondaryKey": Key("str"),
    "autoScaler": _AUTOSCALER,
    "numReplicas": Key("int"),
    "scoringTimeoutMs": Key("int", _POSITIVE, gt=0),
    "replicaMaxConcurrentRequests": Key("int"),
    "maxConcurrentRequestsPerContainer": Key("int", _POSITIVE, gt=0),
    "maxQueueWaitMs": Key("int", _POSITIVE, gt=0),
    "namespace": Key("str"),
    "computeTargetName": Key("str"),
    "gpuCores": Key("int"),
    "livenessProbeRequirements": _PROBE,
    "environmentVariables": Key("mapping"),
    "vnetName": Key("str"),
    "subnetName": Key("str"),
    "port": Key("int"),
})


INFERENCE_SCHEMA = Table({
    "entryScript": Key("str", "name the scoring script", required=True, ge=1, example="score.py"),
    "runtime": Key("str", "the harness serves Python scoring scripts", default="python"),
    "condaFile": Key("str"),
    "sourceDirectory": Key("str", default="."),
    "extraDockerfileSteps": Key("str"),
    "schemaFile": Key("str"),
    "enableGpu": Key("bool"),
    "baseImage": Key("str"),
    "baseImageRegistry": Table({"address": Key("str"), "username": Key("str"), "password": Key("str")}),
    "cudaVersion": Key("str"),
    "description": Key("str"),
    "dependencies": Key("str"),
})


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
    values = check(data, DEPLOYMENT_SCHEMA, path, syntax="yaml")
    res = values["containerResourceRequirements"]
    timeout = values["scoringTimeoutMs"]
    return DeploymentConfig(
        path=path,
        compute_type=values["computeType"],
        cpu=float(res["cpu"]),
        memory_gb=res["memoryInGB"],
        auth_enabled=values["authEnabled"],
        ssl_enabled=values["sslEnabled"],
        app_insights_enabled=values["appInsightsEnabled"],
        scoring_timeout_ms=int(timeout) if timeout is not None else V1_DEFAULT_SCORING_TIMEOUT_MS,
        scoring_timeout_from_config=timeout is not None,
        max_concurrent_requests_per_container=values["maxConcurrentRequestsPerContainer"],
        max_queue_wait_ms=values["maxQueueWaitMs"],
        autoscaler=data.get("autoScaler"),
        raw=data,
    )


def parse_inference_config(path: Path, referenced_from: Path) -> InferenceConfig:
    data = load_yaml(path, referenced_from, "release.inference_config")
    if not isinstance(data, dict):
        raise ConfigError(path, None, f"expected a mapping, got {typename(data)}",
                          "write 'entryScript: score.py', 'runtime: python', 'condaFile: myenv.yml'")
    values = check(data, INFERENCE_SCHEMA, path, syntax="yaml")
    entry_path = (path.parent / values["sourceDirectory"] / values["entryScript"]).resolve()
    if not entry_path.is_file():
        raise ConfigError(path, "entryScript", f"entry script not found at {entry_path}",
                          "fix the path (relative to sourceDirectory, or to this file)")
    runtime = values["runtime"]
    if runtime.lower() != "python":
        raise ConfigError(path, "runtime", f"unsupported runtime {runtime!r}", "use 'runtime: python'")
    conda = values["condaFile"]
    conda_path = None
    if conda:
        conda_path = (path.parent / conda).resolve()
        env = load_yaml(conda_path, path, "condaFile")
        if not isinstance(env, dict) or not isinstance(env.get("dependencies"), list):
            raise ConfigError(conda_path, "dependencies", "a conda environment file needs a 'dependencies' list",
                              "list python=3.x and a pip section")
    return InferenceConfig(path=path, entry_script=entry_path, runtime=runtime, conda_file=conda_path, raw=data)

