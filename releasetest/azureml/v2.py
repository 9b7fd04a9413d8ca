"""Azure ML CLI v2 online endpoint and deployment YAML (managed and Kubernetes), read as the CLI reads them.

Every file is checked key by key with the gate's own table checker (:mod:`releasetest.tables`), so a typo
fails with one line naming the file, the key, the fix and the closest known key. Where azure-ai-ml is
importable the file is then loaded with its own ``load_online_deployment`` / ``load_online_endpoint``,
so what Azure's CLI would refuse is refused here too; gating a v2 release needs no Azure SDK.

The deployment's model, code and environment are resolved to files on disk: a local ``path`` (a file
or a folder), or a registered reference (``azureml:<name>:<version>``, ``azureml://registries/...``)
fetched through the model registry as ``--release-artifact`` does. Settings Azure applies when the YAML
is silent take Azure's documented defaults (see docs/azureml.md, "v2 deployment settings").
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from releasetest.errors import ConfigError
from releasetest.files import load_yaml, sha256_file
from releasetest.tables import Key, Table, check, check_table, typename

#: request_settings defaults of a v2 online deployment (azure-ai-ml OnlineRequestSettings, Azure docs).
DEFAULT_REQUEST_TIMEOUT_MS = 5000
DEFAULT_MAX_CONCURRENT = 1
#: Azure ML admits ``ADMIT_FACTOR × max_concurrent_requests_per_instance × instance_count`` scoring
#: requests at once and answers 429 "Too many pending requests" beyond (docs/azureml.md).
ADMIT_FACTOR = 2
DEFAULT_MAX_QUEUE_WAIT_MS = 500
#: liveness/readiness probe defaults (seconds, counts).
DEFAULT_PROBE = {"initial_delay": 10, "period": 10, "timeout": 2, "success_threshold": 1, "failure_threshold": 30}

#: vCPUs of the instance types Azure ML's managed online endpoints list most often; an unlisted type
#: is recorded as unknown and the local server keeps its one worker.
INSTANCE_CORES: dict[str, int] = {
    "Standard_DS1_v2": 1, "Standard_DS2_v2": 2, "Standard_DS3_v2": 4, "Standard_DS4_v2": 8, "Standard_DS5_v2": 16,
    "Standard_F2s_v2": 2, "Standard_F4s_v2": 4, "Standard_F8s_v2": 8, "Standard_F16s_v2": 16,
    "Standard_F32s_v2": 32, "Standard_F48s_v2": 48, "Standard_F64s_v2": 64, "Standard_F72s_v2": 72,
    "Standard_E2s_v3": 2, "Standard_E4s_v3": 4, "Standard_E8s_v3": 8, "Standard_E16s_v3": 16,
    "Standard_E32s_v3": 32, "Standard_E48s_v3": 48, "Standard_E64s_v3": 64,
    "Standard_NC4as_T4_v3": 4, "Standard_NC6s_v3": 6, "Standard_NC8as_T4_v3": 8, "Standard_NC12s_v3": 12,
    "Standard_NC16as_T4_v3": 16, "Standard_NC24ads_A100_v4": 24, "Standard_NC24s_v3": 24,
}

MODEL_TYPES = ("custom_model", "mlflow_model", "triton_model")

_PROBE = Table({
    "initial_delay": Key("int", "seconds before the first probe", ge=0, example=10),
    "period": Key("int", "seconds between probes", gt=0, example=10),
    "timeout": Key("int", "seconds one probe may take", gt=0, example=2),
    "success_threshold": Key("int", "successes in a row that count as up", gt=0, example=1),
    "failure_threshold": Key("int", "failures in a row that count as down", gt=0, example=30),
    "scheme": Key("str"),
    "method": Key("str"),
    "path": Key("str"),
    "port": Key("int"),
}, "write it as initial_delay, period, timeout, success_threshold, failure_threshold")

_REQUEST_SETTINGS = Table({
    "request_timeout_ms": Key("int", "milliseconds one scoring request may take (Azure's default 5000)", gt=0,
                              example=DEFAULT_REQUEST_TIMEOUT_MS),
    "max_concurrent_requests_per_instance": Key("int", "requests one instance takes at once (Azure's default 1)",
                                                gt=0, example=DEFAULT_MAX_CONCURRENT),
    "max_queue_wait_ms": Key("int", "deprecated by Azure; remove it", gt=0),
}, "write it as request_timeout_ms and max_concurrent_requests_per_instance")

_MODEL = Table({
    "$schema": Key("str"),
    "name": Key("str", "the model's name", ge=1),
    "version": Key("any", "the model's version", example=1),
    "path": Key("str", "a local file or folder, relative to this file", ge=1, example="../model"),
    "type": Key("str", "the model's asset type", default="custom_model", choices=MODEL_TYPES),
    "description": Key("str"),
    "tags": Key("mapping"),
    "properties": Key("mapping"),
    "stage": Key("str"),
    "job_name": Key("str"),
    "datastore": Key("str"),
}, "write model: {path: ...} or model: azureml:<name>:<version>")

_CODE = Table({
    "code": Key("str", "the folder holding the scoring script, relative to this file", required=True, ge=1,
                example="../onlinescoring"),
    "scoring_script": Key("str", "the scoring script, relative to code", required=True, ge=1, example="score.py"),
}, "write code_configuration: {code: ../onlinescoring, scoring_script: score.py}")

_ENVIRONMENT = Table({
    "$schema": Key("str"),
    "name": Key("str"),
    "version": Key("any"),
    "image": Key("str", "the base image", example="mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest"),
    "conda_file": Key("str", "the conda file, relative to this file", ge=1, example="../environment/conda.yaml"),
    "build": Key("mapping", "a Docker build context; the gate cannot build images: use image + conda_file"),
    "description": Key("str"),
    "tags": Key("mapping"),
    "os_type": Key("str"),
    "inference_config": Key("mapping"),
}, "write environment: {conda_file: ..., image: ...} or environment: azureml:<name>:<version>")

_RESOURCE_PAIR = Table({"cpu": Key("any"), "memory": Key("any"), "nvidia.com/gpu": Key("any")})

#: Keys of a managed or Kubernetes online deployment YAML (azure-ai-ml's online deployment schemas).
DEPLOYMENT_SCHEMA = Table({
    "$schema": Key("str"),
    "name": Key("str", "the deployment's name", ge=1, example="blue"),
    "endpoint_name": Key("str", "the endpoint this deployment belongs to", ge=1),
    "type": Key("str", "managed or kubernetes", default="managed", choices=("managed", "kubernetes")),
    "description": Key("str"),
    "tags": Key("mapping"),
    "properties": Key("mapping"),
    "model": Key("any", "a mapping with path (or name and version), or azureml:<name>:<version>", required=True),
    "model_mount_path": Key("str"),
    "code_configuration": Key("mapping", "code: <folder> and scoring_script: <file>",
                              example="{code: onlinescoring, scoring_script: score.py}"),
    "environment": Key("any", "a mapping with conda_file and image, or azureml:<name>:<version>"),
    "environment_variables": Key("mapping", "name: value lines", example="{WORKER_COUNT: 1}"),
    "instance_type": Key("str", "the VM size", example="Standard_DS3_v2"),
    "instance_count": Key("int", "instances behind the endpoint", gt=0, example=1),
    "app_insights_enabled": Key("bool", default=False),
    "request_settings": _REQUEST_SETTINGS,
    "liveness_probe": _PROBE,
    "readiness_probe": _PROBE,
    "scale_settings": Key("mapping"),
    "egress_public_network_access": Key("str", choices=("enabled", "disabled")),
    "private_network_connection": Key("bool"),
    "data_collector": Key("mapping"),
    "resources": Table({"requests": _RESOURCE_PAIR, "limits": _RESOURCE_PAIR}),
    "with_package": Key("bool"),
}, "see the Azure ML managed online deployment YAML reference")

ENDPOINT_SCHEMA = Table({
    "$schema": Key("str"),
    "name": Key("str", "the endpoint's name", ge=3, example="my-endpoint"),
    "auth_mode": Key("str", "how callers authenticate", default="key", choices=("key", "aml_token", "aad_token")),
    "description": Key("str"),
    "tags": Key("mapping"),
    "properties": Key("mapping"),
    "traffic": Key("mapping"),
    "mirror_traffic": Key("mapping"),
    "public_network_access": Key("str", choices=("enabled", "disabled")),
    "identity": Key("mapping"),
    "compute": Key("str"),
    "kind": Key("str"),
}, "see the Azure ML online endpoint YAML reference")

_REGISTERED = re.compile(r"^azureml:(?P<name>[^:@/]+)(?::(?P<version>[^:@]+)|@(?P<label>\w+))?$")
_REGISTRY = re.compile(r"^azureml://registries/(?P<registry>[^/]+)/(?:models|environments)/(?P<name>[^/]+)"
                       r"/(?:versions/(?P<version>[^/]+)|labels/(?P<label>[^/]+))$")


@dataclass(frozen=True)
class RegisteredRef:
    """``azureml:<name>:<version>``, ``azureml:<name>@latest`` or ``azureml://registries/<r>/.../<name>/...``."""

    text: str
    name: str
    version: str | None
    registry: str | None = None


def parse_ref(text: str) -> RegisteredRef | None:
    m = _REGISTERED.match(text) or _REGISTRY.match(text)
    if m is None:
        return None
    groups = m.groupdict()
    return RegisteredRef(text=text, name=groups["name"], version=groups.get("version"),
                         registry=groups.get("registry"))


@dataclass(frozen=True)
class ModelSpec:
    """The deployment's model: a local file or folder (``path``), or a registered reference (``ref``)."""

    type: str
    name: str
    version: str
    path: Path | None = None
    ref: RegisteredRef | None = None

    @property
    def is_folder(self) -> bool:
        return self.path is not None and self.path.is_dir()

    def files(self) -> list[Path]:
        """Every file of a local model, sorted (a folder's whole tree)."""
        if self.path is None:
            return []
        if self.path.is_file():
            return [self.path]
        return sorted(p for p in self.path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


@dataclass(frozen=True)
class EnvironmentSpec:
    """A conda file (+ image, recorded), or a registered/curated reference the gate cannot compare."""

    conda_file: Path | None = None
    image: str | None = None
    ref: str | None = None


@dataclass(frozen=True)
class EndpointV2:
    path: Path
    name: str | None
    auth_mode: str
    raw: dict[str, Any]


@dataclass(frozen=True)
class DeploymentV2:
    """A v2 online deployment: the fields the gate acts on (named as the v1 config's, so the suites and the
    verdict read either), the model, code and environment, and the raw mapping."""

    path: Path
    name: str | None
    kind: str
    model: ModelSpec
    code_dir: Path | None
    scoring_script: Path | None
    environment: EnvironmentSpec
    environment_variables: dict[str, str]
    instance_type: str | None
    instance_count: int
    cpu: float
    scoring_timeout_ms: int
    scoring_timeout_from_config: bool
    max_concurrent_requests_per_container: int
    readiness_bound_s: float
    app_insights_enabled: bool
    raw: dict[str, Any]
    endpoint: EndpointV2 | None = None
    memory_gb: float | None = None
    ssl_enabled: bool = False
    max_queue_wait_ms: int | None = None
    autoscaler: dict[str, Any] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def admits_per_instance(self) -> int:
        """Scoring requests one instance takes at once before Azure answers 429."""
        return ADMIT_FACTOR * self.max_concurrent_requests_per_container

    @property
    def compute_type(self) -> str:
        return self.kind

    @property
    def auth_enabled(self) -> bool:
        """A v2 online endpoint always authenticates (key, aml_token or aad_token)."""
        return True

    @property
    def worker_count(self) -> int:
        """azmlinfsrv's WORKER_COUNT: the deployment's environment variable, else the server's default 1."""
        value = self.environment_variables.get("WORKER_COUNT")
        return int(value) if value is not None and str(value).isdigit() and int(value) > 0 else 1


def _sdk_validate(path: Path, kind: str) -> None:
    """Load the file with azure-ai-ml's own loader, when installed; its refusal becomes one line."""
    import warnings

    # azure-ai-ml's own deprecation warnings (marshmallow) are not the user's to fix.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from azure.ai.ml import load_online_deployment, load_online_endpoint
        except ImportError:
            return
        loader = load_online_deployment if kind == "deployment" else load_online_endpoint
        try:
            loader(source=str(path))
        except Exception as exc:  # azure-ai-ml raises ValidationException, marshmallow errors and more
            text = " ".join(str(getattr(exc, "message", None) or exc).split())
            raise ConfigError(path, None, f"azure-ai-ml refuses this online {kind}: {text[:400]}",
                              "fix it as the message says; `az ml online-" + kind + " create -f` would refuse it "
                              "the same way") from None


def _probe_bound(values: dict[str, Any], given: dict[str, Any] | None) -> float:
    """Seconds Azure waits for readiness before it gives up: initial_delay + period * failure_threshold."""
    probe = {k: (values[k] if values[k] is not None else DEFAULT_PROBE[k]) for k in DEFAULT_PROBE} \
        if given else DEFAULT_PROBE
    return float(probe["initial_delay"] + probe["period"] * probe["failure_threshold"])


def _model(value: Any, path: Path) -> ModelSpec:
    if isinstance(value, str):
        ref = parse_ref(value)
        if ref is None:
            raise ConfigError(path, "model", f"not a registered model reference: {value!r}",
                              "write azureml:<name>:<version>, or model: {path: ../model} for a local model")
        if ref.version is None:
            raise ConfigError(path, "model", f"{value!r} names no version",
                              "pin the version the release was tested with: azureml:<name>:<version>")
        return ModelSpec(type="custom_model", name=ref.name, version=ref.version, ref=ref)
    if not isinstance(value, dict):
        raise ConfigError(path, "model", f"expected a mapping or azureml:<name>:<version>, got {typename(value)}",
                          "write model: {path: ../model}")
    values = check(value, _MODEL, path, "model.", syntax="yaml")
    if values["type"] == "triton_model":
        raise ConfigError(path, "model.type", "triton_model is served by Triton, not by azmlinfsrv",
                          "gate a custom_model or mlflow_model release")
    version = values["version"]
    if values["path"] is None:
        if values["name"] is None or version is None:
            raise ConfigError(path, "model", "names neither a local path nor a name and version",
                              "add path: ../model, or name and version of a registered model")
        ref = RegisteredRef(text=f"azureml:{values['name']}:{version}", name=values["name"], version=str(version))
        return ModelSpec(type=values["type"], name=values["name"], version=str(version), ref=ref)
    local = (path.parent / values["path"]).resolve()
    if not local.exists():
        raise ConfigError(path, "model.path", f"model not found at {local}",
                          "fix the path (relative to this file) or restore the model")
    name = values["name"] or local.stem
    return ModelSpec(type=values["type"], name=name, version=str(version if version is not None else 1), path=local)


def _environment(value: Any, path: Path) -> EnvironmentSpec:
    if value is None:
        return EnvironmentSpec()
    if isinstance(value, str):
        if parse_ref(value) is None:
            raise ConfigError(path, "environment", f"not a registered environment reference: {value!r}",
                              "write azureml:<name>:<version> (or @latest), or environment: {conda_file, image}")
        return EnvironmentSpec(ref=value)
    if not isinstance(value, dict):
        raise ConfigError(path, "environment", f"expected a mapping or a reference, got {typename(value)}",
                          "write environment: {conda_file: ..., image: ...}")
    values = check(value, _ENVIRONMENT, path, "environment.", syntax="yaml")
    if values["build"] is not None:
        raise ConfigError(path, "environment.build", "the gate cannot build a Docker context",
                          "describe the environment with image and conda_file")
    conda = None
    if values["conda_file"] is not None:
        conda = (path.parent / values["conda_file"]).resolve()
        env = load_yaml(conda, path, "environment.conda_file")
        if not isinstance(env, dict) or not isinstance(env.get("dependencies"), list):
            raise ConfigError(conda, "dependencies", "a conda environment file needs a 'dependencies' list",
                              "list python=3.x and a pip section")
    return EnvironmentSpec(conda_file=conda, image=values["image"])


def _cores(values: dict[str, Any], kind: str) -> tuple[float, list[str]]:
    notes: list[str] = []
    if kind == "kubernetes":
        cpu = (values["resources"]["requests"] or {}).get("cpu")
        try:
            text = str(cpu)
            return (float(text[:-1]) / 1000 if text.endswith("m") else float(text)), notes
        except ValueError:
            notes.append(f"resources.requests.cpu {cpu!r} is not a core count; taken as 1")
            return 1.0, notes
    itype = values["instance_type"]
    if itype is None:
        return 1.0, notes
    cores = INSTANCE_CORES.get(itype)
    if cores is None:
        notes.append(f"instance_type {itype} is not in the gate's table of cores; taken as 1")
        return 1.0, notes
    return float(cores), notes


def parse_endpoint(path: Path, referenced_from: Path, key: str) -> EndpointV2:
    data = load_yaml(path, referenced_from, key)
    if not isinstance(data, dict):
        raise ConfigError(path, None, f"expected a mapping, got {typename(data)}",
                          "write it as name: my-endpoint and auth_mode: key lines")
    values = check(data, ENDPOINT_SCHEMA, path, syntax="yaml")
    _sdk_validate(path, "endpoint")
    return EndpointV2(path=path, name=values["name"], auth_mode=values["auth_mode"], raw=data)


def parse_deployment(path: Path, referenced_from: Path, key: str, endpoint: EndpointV2 | None = None) -> DeploymentV2:
    """A deployment YAML, checked and resolved (model, code, environment), with v2's defaults applied."""
    data = load_yaml(path, referenced_from, key)
    if not isinstance(data, dict):
        raise ConfigError(path, None, f"expected a mapping, got {typename(data)}",
                          "write it as in Azure's sample: name, endpoint_name, model, code_configuration, ...")
    values = check(data, DEPLOYMENT_SCHEMA, path, syntax="yaml")
    model = _model(data["model"], path)
    code_dir = script = None
    if data.get("code_configuration") is not None:
        code = check_table(data["code_configuration"], _CODE, path, "code_configuration", syntax="yaml")
        code_dir = (path.parent / code["code"]).resolve()
        if not code_dir.is_dir():
            raise ConfigError(path, "code_configuration.code", f"code folder not found at {code_dir}",
                              "fix the path (relative to this file)")
        script = (code_dir / code["scoring_script"]).resolve()
        if not script.is_file():
            raise ConfigError(path, "code_configuration.scoring_script", f"scoring script not found at {script}",
                              "fix the path (relative to code)")
    elif model.type != "mlflow_model":
        raise ConfigError(path, "code_configuration", "missing: a custom_model needs a scoring script",
                          "add code_configuration: {code: ../onlinescoring, scoring_script: score.py}, or deploy "
                          "an MLflow model (model type: mlflow_model)")
    environment = _environment(data.get("environment"), path)
    if environment.conda_file is None and environment.ref is None and model.type != "mlflow_model":
        raise ConfigError(path, "environment", "missing: a custom_model needs an environment",
                          "add environment: {conda_file: ..., image: ...} or a registered environment")
    rs = values["request_settings"]
    kind = values["type"]
    cpu, notes = _cores(values, kind)
    env_vars = {str(k): str(v) for k, v in (values["environment_variables"] or {}).items()}
    _sdk_validate(path, "deployment")
    return DeploymentV2(
        path=path, name=values["name"], kind=kind, model=model, code_dir=code_dir, scoring_script=script,
        environment=environment, environment_variables=env_vars, instance_type=values["instance_type"],
        instance_count=values["instance_count"] or 1, cpu=cpu,
        scoring_timeout_ms=rs["request_timeout_ms"] or DEFAULT_REQUEST_TIMEOUT_MS,
        scoring_timeout_from_config=rs["request_timeout_ms"] is not None,
        max_concurrent_requests_per_container=rs["max_concurrent_requests_per_instance"] or DEFAULT_MAX_CONCURRENT,
        max_queue_wait_ms=rs["max_queue_wait_ms"],
        readiness_bound_s=_probe_bound(values["readiness_probe"], data.get("readiness_probe")),
        app_insights_enabled=values["app_insights_enabled"], raw=data, endpoint=endpoint, notes=tuple(notes))


def tree_sha256(root: Path) -> str:
    """One digest over a folder: each file's path relative to it and its sha256, sorted."""
    h = hashlib.sha256()
    for p in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        h.update(f"{p.relative_to(root).as_posix()}\0{sha256_file(p)}\n".encode())
    return h.hexdigest()

