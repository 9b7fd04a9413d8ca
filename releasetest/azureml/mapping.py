"""Map a release's Azure ML v1 configs (ACI/AKS web service) to v2 online endpoint entities.

Pure data: the result is the endpoint and deployment in the v2 CLI YAML schema (plain dicts, so
``releasetest azureml-plan`` can print them for review without azure-ai-ml installed), the model
assets the deployment needs, and one :class:`Drift` for every v1 setting whose behaviour changes
or is lost in v2. The Azure ML target deploys exactly these dicts, so what a reviewer reads is
what gets deployed. The table in ``docs/azureml.md`` documents every row of :func:`plan_for`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from releasetest.azureml.v2 import DeploymentV2
from releasetest.azureml.workspace import SHA_TAG, tree_digest
from releasetest.errors import ConfigError, DeployError
from releasetest.files import sha256_file
from releasetest.release.manifest import Release, Stage

SCHEMA = "https://azuremlschemas.azureedge.net/latest/{}.schema.json"
#: Model tag holding :func:`tree_digest` of the files; a registered version is reused only when it matches.

#: v2 managed online deployments refuse a request timeout above this (ms).
MANAGED_MAX_REQUEST_TIMEOUT_MS = 180_000
#: v2 default request timeout (ms) when the deployment sets none; v1 waited 60 s.
V2_DEFAULT_REQUEST_TIMEOUT_MS = 5_000
#: Image the v2 curated examples build conda environments on (v1 used its own base image).
DEFAULT_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"

#: Managed online endpoint SKUs the mapping picks from: (name, vCPUs, memory GiB, GPUs), smallest
#: first. General purpose DSv2 for CPU, NCv3 for GPU; the first that covers the v1 request wins.
MANAGED_SKUS: tuple[tuple[str, int, float, int], ...] = (
    ("Standard_DS1_v2", 1, 3.5, 0),
    ("Standard_DS2_v2", 2, 7.0, 0),
    ("Standard_DS3_v2", 4, 14.0, 0),
    ("Standard_DS4_v2", 8, 28.0, 0),
    ("Standard_DS5_v2", 16, 56.0, 0),
    ("Standard_NC6s_v3", 6, 112.0, 1),
    ("Standard_NC12s_v3", 12, 224.0, 2),
    ("Standard_NC24s_v3", 24, 448.0, 4),
)

#: v1 keys with no v2 counterpart: what happens to them, for the drift warning.
_DROPPED: dict[str, str] = {
    "location": "v2 endpoints live in the workspace's region",
    "dnsNameLabel": "v2 scoring URIs are <endpoint>.<region>.inference.ml.azure.com",
    "cname": "managed endpoints have no custom domain",
    "sslCname": "managed endpoints have no custom domain",
    "sslCertificate": "managed endpoints use Azure's certificate",
    "sslKey": "managed endpoints use Azure's certificate",
    "primaryKey": "v2 generates the keys (regenerate them with az ml online-endpoint regenerate-keys)",
    "secondaryKey": "v2 generates the keys (regenerate them with az ml online-endpoint regenerate-keys)",
    "collectModelData": "v1 model data collection is replaced by the v2 data_collector (not mapped)",
    "vnetName": "v2 network isolation uses public_network_access / egress_public_network_access",
    "subnetName": "v2 network isolation uses public_network_access / egress_public_network_access",
    "port": "v2 serves on the platform's port",
    "properties": "v2 endpoints keep tags, not properties",
}

Kind = Literal["managed", "kubernetes"]


@dataclass(frozen=True)
class Drift:
    """A v1 setting whose behaviour differs in v2 (or is lost): shown to the user, kept in the verdict."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


@dataclass(frozen=True)
class ModelAsset:
    """A registered model the deployment needs: reused when ``name:version`` exists, else registered."""

    name: str
    version: str
    #: (path relative to the asset root, absolute local file, sha256) for every file.
    files: tuple[tuple[str, Path, str], ...]
    #: The folder registered (and so mounted under ``AZUREML_MODEL_DIR``); default the asset's name.
    #: A v2 folder model keeps its own folder's name, as ``model: {path: model/}`` does on Azure.
    folder: str | None = None
    #: ``custom_model``, or ``mlflow_model`` (what Azure ML's no-code deployment needs).
    type: str = "custom_model"

    @property
    def ref(self) -> str:
        return f"azureml:{self.name}:{self.version}"

    @property
    def digest(self) -> str:
        return tree_digest(self.files)

    def stage(self, into: Path) -> Path:
        """Copy the files to ``into/<name>/<rel>``, the folder registered as the model, re-hashed on the way."""
        folder = into / (self.folder or self.name)
        for rel, src, sha in self.files:
            dest = folder / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            if sha256_file(dest) != sha:
                raise DeployError(f"model {self.name}: {rel} changed while being staged for upload "
                                  "(sha256 no longer matches the manifest)")
        return folder


@dataclass(frozen=True)
class Plan:
    kind: Kind
    endpoint: dict[str, Any]
    deployment: dict[str, Any]
    models: tuple[ModelAsset, ...]
    #: The one model the deployment mounts (v2 allows one per deployment).
    deployment_model: ModelAsset
    base_path: Path
    drift: tuple[Drift, ...] = field(default=())

    def to_yaml(self) -> str:
        """Endpoint and deployment as a two-document YAML stream, drift as comments on top."""
        head = [f"# Azure ML v2 {self.kind} online endpoint planned by releasetest",
                f"# paths are relative to {self.base_path}"]
        head += [f"# DRIFT {d}" for d in self.drift] or ["# no drift from the v1 configuration"]
        docs = [yaml.safe_dump(d, sort_keys=False, default_flow_style=False) for d in (self.endpoint, self.deployment)]
        return "\n".join(head) + "\n" + "---\n".join(docs)

    def write_files(self, out: Path) -> list[Path]:
        """One YAML file per resource, in the order to create them (``az ml model create -f``,
        ``az ml environment create -f``, ``az ml online-endpoint create -f``, ``az ml
        online-deployment create -f``); paths are relative to ``out``, the model files are copied
        under ``out/model/`` in the layout promotion registers, with the same sha256 tag, so a
        later promotion reuses the model instead of refusing it."""
        out.mkdir(parents=True, exist_ok=True)
        model = self.deployment_model
        folder = model.stage(out / "model")
        deployment = dict(self.deployment)
        env = deployment.get("environment")
        if isinstance(env, dict):
            env = dict(env)
            if "conda_file" in env:
                env["conda_file"] = os.path.relpath(self.base_path / env["conda_file"], out)
            deployment["environment"] = f"azureml:{env['name']}:{env['version']}"
        if "code_configuration" in deployment:
            code = dict(deployment["code_configuration"])
            code["code"] = os.path.relpath(self.base_path / code["code"], out)
            deployment["code_configuration"] = code
        model_doc = {"$schema": SCHEMA.format("model"), "name": model.name, "version": str(model.version),
                     "path": os.path.relpath(folder, out), "description": self.endpoint["description"],
                     "tags": {SHA_TAG: model.digest, "release_id": self.endpoint["tags"]["release_id"]}}
        if model.type != "custom_model":
            model_doc["type"] = model.type
        docs = {"model.yml": model_doc, "environment.yml": ({"$schema": SCHEMA.format("environment"), **env}
                                                            if isinstance(env, dict) else None),
                "endpoint.yml": self.endpoint, "deployment.yml": deployment}
        drift = "".join(f"# DRIFT {d}\n" for d in self.drift)
        written = []
        for name, doc in docs.items():
            if doc is None:
                continue
            path = out / name
            path.write_text(f"# planned by releasetest; paths relative to this file\n{drift}"
                            + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False), encoding="utf-8")
            written.append(path)
        return written


Purpose = Literal["gate", "promote"]


@dataclass(frozen=True)
class AzureNames:
    """The endpoint and deployment a stage's Azure ML resources get."""

    endpoint: str
    deployment: str
    purpose: Purpose


def azure_names(release: Release, stage: str, purpose: Purpose, endpoint: str | None = None) -> AzureNames:
    """The one naming rule for plan, gate and promotion.

    The gate tests in an endpoint of its own, ``<stage>-<short id>`` with deployment ``blue``,
    deleted after the run, so concurrent gates never share one. A promotion adds deployment
    ``r-<short id>`` to the stage's kept endpoint ``<release>-<stage>``, so the endpoint shows
    which release each deployment serves. ``endpoint`` overrides the endpoint name.
    """
    if purpose == "gate":
        return AzureNames(endpoint or endpoint_name(stage, release.short_id), "blue", purpose)
    return AzureNames(endpoint or stage_endpoint_name(release.name, stage),
                      release_deployment_name(release.short_id), purpose)


def default_purpose(release: Release, stage: str) -> Purpose:
    """What the pipeline does with ``stage``: promote into it when another stage promotes to it, else gate it."""
    return "promote" if any(s.promote_to == stage for s in release.stages.values()) else "gate"


def endpoint_name(stage: str, short_id: str) -> str:
    """``<stage>-<short id>``: 3-32 characters, letters, digits and hyphens, starting with a letter."""
    slug = re.sub(r"[^a-z0-9-]+", "-", stage.lower()).strip("-") or "stage"
    if not slug[0].isalpha():
        slug = "s" + slug
    return f"{slug[: 31 - len(short_id[:12])]}-{short_id[:12]}"


def stage_endpoint_name(release_name: str, stage: str) -> str:
    """``<release>-<stage>``: the endpoint a promotion keeps for a stage, the same for every release."""
    slug = re.sub(r"[^a-z0-9-]+", "-", f"{release_name}-{stage}".lower()).strip("-")
    if not slug[:1].isalpha():
        slug = "r" + slug
    return slug[:32].rstrip("-")


def release_deployment_name(short_id: str) -> str:
    """``r-<short id>``: the deployment a promotion adds, so the endpoint shows which release serves."""
    return f"r-{short_id[:12]}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def pick_sku(cpu: float, memory_gb: float, gpu: int) -> str | None:
    for name, cores, mem, gpus in MANAGED_SKUS:
        if cores >= cpu and mem >= memory_gb and gpus >= gpu and (gpu > 0) == (gpus > 0):
            return name
    return None


def _kind(stage: Stage) -> Kind:
    compute = (stage.deployment.compute_type or "ACI").upper()
    if compute == "AKS":
        return "kubernetes"
    if compute in ("ACI", "LOCAL"):
        return "managed"
    raise ConfigError(stage.deployment.path, "computeType", f"unknown computeType {compute!r}",
                      "use ACI (mapped to a managed online endpoint) or AKS (Kubernetes online endpoint)")


def _models(release: Release, short_id: str, drift: list[Drift]) -> tuple[tuple[ModelAsset, ...], ModelAsset]:
    """Every artifact as its own asset; several are bundled, since a v2 deployment mounts one model."""
    assets = tuple(
        ModelAsset(a.name, a.version, tuple((f.path.name, f.path, f.sha256) for f in a.files))
        for a in release.artifacts)
    if len(assets) == 1:
        return assets, assets[0]
    bundle = ModelAsset(
        f"{release.name}-models", short_id,
        tuple((f"{m.name}/{m.version}/{rel}", path, digest) for m in assets for rel, path, digest in m.files))
    drift.append(Drift(
        "models", f"a v2 deployment mounts one model, so the {len(assets)} artifacts are bundled as "
        f"{bundle.ref} in the v1 layout <name>/<version>/<file>; v2 mounts a folder model one level "
        "down ($AZUREML_MODEL_DIR/<folder>/<name>/<version>/<file>), so an entry script that globs "
        "$AZUREML_MODEL_DIR/<name>/* must also look one folder deeper"))
    return assets, bundle


def _env_version(image: str, conda_file: Path | None) -> str:
    digest = hashlib.sha256(image.encode())
    if conda_file is not None:
        digest.update(conda_file.read_bytes())
    return digest.hexdigest()[:12]


def _conda_has_server(path: Path) -> bool:
    text = path.read_text(encoding="utf-8", errors="replace")
    return "azureml-inference-server-http" in text or "azureml-defaults" in text


def plan_for(release: Release, stage: Stage, purpose: Purpose = "gate", name: str | None = None) -> Plan:
    """The v2 endpoint and deployment for ``stage``, named by :func:`azure_names` for ``purpose``;
    every behavioural difference becomes a Drift."""
    dc = stage.deployment
    if isinstance(dc, DeploymentV2):
        return _plan_v2(release, stage, dc, azure_names(release, stage.name, purpose, name))
    raw = dc.raw
    kind = _kind(stage)
    drift: list[Drift] = []
    base = release.root
    named = azure_names(release, stage.name, purpose, name)
    ep_name, deployment = named.endpoint, named.deployment

    # --- endpoint -------------------------------------------------------------------------
    token = bool(raw.get("tokenAuthEnabled"))
    auth_mode = "aml_token" if token else "key"
    if not dc.auth_enabled and not token:
        drift.append(Drift("authEnabled", "v1 served this stage without authentication; v2 has no "
                           "unauthenticated endpoints, so auth_mode is key and every client must send the key"))
    endpoint: dict[str, Any] = {
        "$schema": SCHEMA.format("managedOnlineEndpoint" if kind == "managed" else "kubernetesOnlineEndpoint"),
        "name": ep_name,
        "auth_mode": auth_mode,
        "description": raw.get("description") or f"{release.name} {release.short_id} stage {stage.name} (releasetest)",
        "tags": {**{str(k): str(v) for k, v in (raw.get("tags") or {}).items()},
                 "release": release.name, "release_id": release.release_id, "stage": stage.name},
    }
    if kind == "kubernetes":
        compute = raw.get("computeTargetName")
        if not compute:
            drift.append(Drift("computeTargetName", "missing: a Kubernetes online endpoint needs the attached "
                               "compute; the plan names 'azureml:aks-compute', set computeTargetName"))
        endpoint["compute"] = f"azureml:{compute or 'aks-compute'}"
        if raw.get("namespace"):
            drift.append(Drift("namespace", "v2 takes the namespace from the attached compute, not per endpoint"))
    if kind == "managed" and not dc.ssl_enabled:
        drift.append(Drift("sslEnabled", "v1 served plain HTTP; managed endpoints are always HTTPS"))
    if kind == "kubernetes" and "sslEnabled" in raw:
        drift.append(Drift("sslEnabled", "TLS of a Kubernetes endpoint is set on the Azure ML extension "
                           "(allowInsecureConnections / sslCertPemFile), not per endpoint"))

    # --- model, code, environment ---------------------------------------------------------
    models, mounted = _models(release, release.short_id, drift)
    entry = release.inference.entry_script
    src = release.inference.raw.get("sourceDirectory")
    code_dir = (release.inference.path.parent / src).resolve() if src else entry.parent
    image = release.inference.raw.get("baseImage") or DEFAULT_IMAGE
    env: dict[str, Any] = {"name": f"{release.name}-env", "image": image}
    if release.inference.raw.get("baseImage"):
        drift.append(Drift("baseImage", "v2 builds the conda file on this image; it must have a Python the "
                           "conda file can install into"))
    if release.inference.conda_file is not None:
        env["conda_file"] = os.path.relpath(release.inference.conda_file, base)
    # Environment versions are immutable: name the version after what builds the image, so an
    # unchanged environment is reused (no rebuild) and a changed one gets a new version.
    env["version"] = _env_version(image, release.inference.conda_file)
    if release.inference.conda_file is not None:
        if not _conda_has_server(release.inference.conda_file):
            drift.append(Drift("condaFile", "v1 added the inference server to the image; v2 needs "
                               "azureml-inference-server-http in the conda file's pip list"))
    else:
        drift.append(Drift("condaFile", "no conda file: the image must already contain the inference server "
                           "and every package the entry script imports"))
    for k in ("extraDockerfileSteps", "enableGpu", "cudaVersion", "baseImageRegistry"):
        if release.inference.raw.get(k) is not None:
            drift.append(Drift(k, "not mapped: build a custom image with it and name it as baseImage"))

    deployment_doc: dict[str, Any] = {
        "$schema": SCHEMA.format("managedOnlineDeployment" if kind == "managed" else "kubernetesOnlineDeployment"),
        "name": deployment,
        "type": kind,
        "endpoint_name": ep_name,
        "model": mounted.ref,
        "code_configuration": {"code": os.path.relpath(code_dir, base) or ".",
                               "scoring_script": os.path.relpath(entry, code_dir)},
        "environment": env,
    }

    # --- resources and scale --------------------------------------------------------------
    res = raw.get("containerResourceRequirements") or {}
    memory = float(res.get("memoryInGB") or 0.5)
    gpu = int(res.get("gpu") or raw.get("gpuCores") or 0)
    autoscaler = dc.autoscaler or {}
    autoscale = bool(autoscaler.get("autoscaleEnabled", False))
    instances = int(raw.get("numReplicas") or autoscaler.get("minReplicas") or 1)
    if kind == "managed":
        sku = pick_sku(dc.cpu, memory, gpu)
        if sku is None:
            raise ConfigError(dc.path, "containerResourceRequirements",
                              f"no managed SKU has {_num(dc.cpu)} cores, {_num(memory)} GB and {gpu} GPUs",
                              "lower the request or deploy to Kubernetes (computeType: AKS)")
        deployment_doc["instance_type"] = sku
        deployment_doc["instance_count"] = instances
        if res:
            cores, mem = next((c, m) for n, c, m, _ in MANAGED_SKUS if n == sku)
            drift.append(Drift("containerResourceRequirements",
                               f"v1 capped the container at {_num(dc.cpu)} cores / {_num(memory)} GB; v2 gives each "
                               f"instance a whole {sku} ({cores} cores / {_num(mem)} GB), so capacity per instance "
                               "differs from what v1 load tests measured"))
        if autoscaler:
            drift.append(Drift("autoScaler", "managed endpoints scale with Azure Monitor autoscale rules, not "
                               f"deployment settings; the plan starts {instances} instance(s) and does not autoscale"))
    else:
        requests: dict[str, str] = {"cpu": _num(dc.cpu), "memory": f"{_num(memory)}Gi"}
        if gpu:
            requests["nvidia.com/gpu"] = str(gpu)
        resources: dict[str, Any] = {"requests": requests}
        limits = {k: v for k, v in (("cpu", res.get("cpuLimit")), ("memory", res.get("memoryInGBLimit"))) if v}
        if limits:
            resources["limits"] = {k: (_num(v) if k == "cpu" else f"{_num(v)}Gi") for k, v in limits.items()}
        deployment_doc["resources"] = resources
        deployment_doc["instance_count"] = instances
        if res.get("memoryInGB"):
            drift.append(Drift("containerResourceRequirements.memoryInGB",
                               f"{_num(memory)} GB is requested as {_num(memory)}Gi (binary gigabytes) in Kubernetes"))
        if autoscale:
            deployment_doc["scale_settings"] = {
                "type": "target_utilization",
                "min_instances": int(autoscaler.get("minReplicas", 1)),
                "max_instances": int(autoscaler.get("maxReplicas", 10)),
                "polling_interval": int(autoscaler.get("refreshPeriodInSeconds", 1)),
                "target_utilization_percentage": int(autoscaler.get("targetUtilization", 70)),
            }
        else:
            deployment_doc["scale_settings"] = {"type": "default"}

    # --- requests --------------------------------------------------------------------------
    timeout = dc.scoring_timeout_ms
    if not dc.scoring_timeout_from_config:
        drift.append(Drift("scoringTimeoutMs", f"not set: v1 waited {timeout} ms, v2 would default to "
                           f"{V2_DEFAULT_REQUEST_TIMEOUT_MS} ms (azmlinfsrv alone: 1 h); the plan pins {timeout} ms"))
    if kind == "managed" and timeout > MANAGED_MAX_REQUEST_TIMEOUT_MS:
        drift.append(Drift("scoringTimeoutMs", f"{timeout} ms is above the managed maximum "
                           f"{MANAGED_MAX_REQUEST_TIMEOUT_MS} ms; clamped"))
        timeout = MANAGED_MAX_REQUEST_TIMEOUT_MS
    request_settings: dict[str, Any] = {"request_timeout_ms": timeout}
    concurrency = dc.max_concurrent_requests_per_container or raw.get("replicaMaxConcurrentRequests")
    if concurrency:
        request_settings["max_concurrent_requests_per_instance"] = int(concurrency)
    if dc.max_queue_wait_ms is not None:
        if kind == "managed":
            drift.append(Drift("maxQueueWaitMs", "deprecated for managed endpoints and not mapped; requests "
                               f"wait in the queue within request_timeout_ms ({timeout} ms)"))
        else:
            request_settings["max_queue_wait_ms"] = dc.max_queue_wait_ms
            drift.append(Drift("maxQueueWaitMs", "deprecated in v2; kept for Kubernetes, plan to fold it into "
                               "request_timeout_ms"))
    deployment_doc["request_settings"] = request_settings

    env_vars = {str(k): str(v) for k, v in (raw.get("environmentVariables") or {}).items()}
    if concurrency and int(concurrency) > 1 and "WORKER_COUNT" not in env_vars:
        env_vars["WORKER_COUNT"] = str(int(concurrency))
        drift.append(Drift("maxConcurrentRequestsPerContainer",
                           f"the v2 inference server runs one worker unless told; WORKER_COUNT={int(concurrency)} "
                           "is set so the instance serves that many requests at once"))
    if env_vars:
        deployment_doc["environment_variables"] = env_vars
    probe = raw.get("livenessProbeRequirements")
    if probe:
        names = {"periodSeconds": "period", "initialDelaySeconds": "initial_delay", "timeoutSeconds": "timeout",
                 "successThreshold": "success_threshold", "failureThreshold": "failure_threshold"}
        deployment_doc["liveness_probe"] = {names[k]: v for k, v in probe.items() if v is not None}
    deployment_doc["app_insights_enabled"] = dc.app_insights_enabled

    for key, why in _DROPPED.items():
        if raw.get(key) not in (None, "", {}):
            drift.append(Drift(key, f"not mapped: {why}"))
    return Plan(kind=kind, endpoint=endpoint, deployment=deployment_doc, models=models,
                deployment_model=mounted, base_path=base, drift=tuple(drift))



def _plan_v2(release: Release, stage: Stage, dc: DeploymentV2, named: AzureNames) -> Plan:
    """A v2 release's own endpoint and deployment YAML, as written, with the gate's names (endpoint
    and deployment, :func:`azure_names`), its release tags, paths relative to the release folder,
    the request settings v2 defaults to made explicit, and the model as a registered asset."""
    base = release.root
    kind: Kind = "kubernetes" if dc.kind == "kubernetes" else "managed"
    endpoint: dict[str, Any] = dict(dc.endpoint.raw) if dc.endpoint is not None else {
        "$schema": SCHEMA.format("managedOnlineEndpoint" if kind == "managed" else "kubernetesOnlineEndpoint"),
        "auth_mode": "key"}
    endpoint["name"] = named.endpoint
    endpoint.setdefault("description", f"{release.name} {release.short_id} stage {stage.name} (releasetest)")
    endpoint["tags"] = {**{str(k): str(v) for k, v in (endpoint.get("tags") or {}).items()},
                        "release": release.name, "release_id": release.release_id, "stage": stage.name}
    model = release.artifacts[0]
    folder = dc.model.path.name if dc.model.path is not None and dc.model.is_folder else None
    files = tuple(((f.path.relative_to(dc.model.path).as_posix() if folder and dc.model.path else f.path.name),
                   f.path, f.sha256) for f in model.files)
    raw_model = dc.raw.get("model")
    given: dict[str, Any] = raw_model if isinstance(raw_model, dict) else {}
    if dc.model.ref is not None:
        name, version = dc.model.name, dc.model.version
    else:
        # An inline model has no name of its own: the release's, versioned by its bytes.
        name = str(given.get("name") or f"{release.name}-model")
        version = str(given.get("version") or tree_digest(files)[:12])
    asset = ModelAsset(name, version, files, folder=folder, type=dc.model.type)
    deployment: dict[str, Any] = {k: v for k, v in dc.raw.items() if k not in ("name", "endpoint_name", "model")}
    deployment = {"$schema": deployment.pop("$schema", SCHEMA.format(
        "managedOnlineDeployment" if kind == "managed" else "kubernetesOnlineDeployment")),
        "name": named.deployment, "endpoint_name": named.endpoint, "model": asset.ref, **deployment}
    if dc.code_dir is not None and dc.scoring_script is not None:
        deployment["code_configuration"] = {"code": os.path.relpath(dc.code_dir, base) or ".",
                                            "scoring_script": os.path.relpath(dc.scoring_script, dc.code_dir)}
    env = dc.environment
    if env.conda_file is not None:
        image = env.image or DEFAULT_IMAGE
        deployment["environment"] = {"name": f"{release.name}-env", "image": image,
                                     "conda_file": os.path.relpath(env.conda_file, base),
                                     "version": _env_version(image, env.conda_file)}
    request_settings = dict(dc.raw.get("request_settings") or {})
    request_settings.setdefault("request_timeout_ms", dc.scoring_timeout_ms)
    request_settings.setdefault("max_concurrent_requests_per_instance", dc.max_concurrent_requests_per_container)
    deployment["request_settings"] = request_settings
    drift: tuple[Drift, ...] = ()
    if dc.model.path is not None and not dc.model.is_folder:
        drift = (Drift("model.path", f"the file model is registered as the folder {asset.name}/ holding it, so it "
                       f"is mounted at AZUREML_MODEL_DIR/{asset.name}/{dc.model.path.name}, not directly under "
                       "AZUREML_MODEL_DIR as an inline file model is; make the model a folder"),)
    return Plan(kind=kind, endpoint=endpoint, deployment=deployment, models=(asset,), deployment_model=asset,
                base_path=base, drift=drift)
