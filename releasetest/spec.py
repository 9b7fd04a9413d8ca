"""The release: manifest, Azure ML v1 config files and artifacts, validated before any deploy.

Everything here is read with safe parsers (tomllib, yaml.safe_load) and checked against the
keys the Azure ML v1 formats define, so a typo fails here, naming the file and key, rather than
as a mysterious server error later. Artifacts are hashed before anything loads them: the gate
must test exactly what the manifest pins.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib
import yaml

from .errors import ConfigError

#: Largest YAML/TOML file the harness parses; configs are a few hundred bytes.
MAX_CONFIG_BYTES = 1_000_000

#: Manifest tables that configure one suite each; their contents are checked by the suite's own
#: module (see :mod:`releasetest.suite_config`), before deploy.
SUITE_TABLES = ("smoke", "acceptance", "schema", "load")

#: v1 default scoring timeout (ACI and AKS web services) when the deployment config sets none.
V1_DEFAULT_SCORING_TIMEOUT_MS = 60_000


# ---------------------------------------------------------------------------------------------
# Schema checking helpers


def _typename(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_mapping(v: Any) -> bool:
    return isinstance(v, dict)


_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "bool": (_is_bool, "True or False"),
    "int": (_is_int, "a whole number"),
    "number": (_is_number, "a number"),
    "str": (_is_str, "a string"),
    "mapping": (_is_mapping, "a mapping of keys to values"),
}

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


def _check_mapping(data: Mapping[str, Any], schema: Mapping[str, Any], file: Path, prefix: str = "") -> None:
    """Refuse unknown keys and wrong types; ``None`` (an empty YAML value) means "not set"."""
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in schema:
            close = difflib.get_close_matches(str(key), list(schema), n=1)
            hint = f"did you mean '{prefix}{close[0]}'?" if close else (
                "remove it; known keys: " + ", ".join(sorted(schema)))
            raise ConfigError(file, dotted, "unknown key", hint)
        expected = schema[key]
        if value is None:
            continue
        if isinstance(expected, dict):
            if not isinstance(value, dict):
                raise ConfigError(file, dotted, f"expected a mapping, got {_typename(value)} {value!r}",
                                  "indent its keys under it: " + ", ".join(expected))
            _check_mapping(value, expected, file, prefix=f"{dotted}.")
            continue
        check, desc = _KINDS[expected]
        if not check(value):
            raise ConfigError(file, dotted, f"expected {desc}, got {_typename(value)} {value!r}",
                              f"write {desc}" + (" (YAML booleans: True/False)" if expected == "bool" else ""))


def _read_bytes(path: Path, what: str, referenced_from: Path | None, key: str | None) -> bytes:
    if not path.is_file():
        raise ConfigError(referenced_from or path, key,
                          f"{what} not found at {path}",
                          "check the path (relative paths are resolved from the file that names them)")
    data = path.read_bytes()
    if len(data) > MAX_CONFIG_BYTES and what != "artifact":
        raise ConfigError(path, None, f"file is {len(data)} bytes, larger than the {MAX_CONFIG_BYTES} "
                          "a configuration file may have", "point at the right file")
    return data


def load_yaml(path: Path, referenced_from: Path | None = None, key: str | None = None) -> Any:
    """Parse YAML with the safe loader (no object construction) and point at the bad line."""
    text = _read_bytes(path, "YAML file", referenced_from, key)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(path, where, f"invalid YAML: {problem}",
                          "fix the syntax there (indentation, a missing colon or quote)") from None


def _rel(path: Path, root: Path) -> str:
    """Path as the user wrote it relative to the manifest, with forward slashes on every OS."""
    return Path(os.path.relpath(path, root)).as_posix()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# The model


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


@dataclass(frozen=True)
class Stage:
    name: str
    deployment: DeploymentConfig
    promote_to: str | None
    #: Promotion *to* this stage needs a recorded human approval (continuous delivery); without it
    #: a passing gate promotes on its own (continuous deployment).
    requires_approval: bool = False


@dataclass(frozen=True)
class ArtifactFile:
    path: Path
    sha256: str


@dataclass(frozen=True)
class Artifact:
    name: str
    version: str
    files: tuple[ArtifactFile, ...]


@dataclass(frozen=True)
class DataSpec:
    holdout: Path
    features: tuple[str, ...]
    label: str
    classes: tuple[Any, ...]
    expected_predictions: Path | None
    golden_rows: int


@dataclass(frozen=True)
class Release:
    manifest: Path
    name: str
    inference: InferenceConfig
    stages: dict[str, Stage]
    artifacts: tuple[Artifact, ...]
    data: DataSpec | None
    entry_script_sha256: str
    config_digests: dict[str, str] = field(default_factory=dict)
    #: Raw ``[acceptance]``, ``[schema]``, ``[load]`` ... tables, by suite name.
    suite_tables: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.manifest.parent

    @property
    def release_id(self) -> str:
        """Digest over artifacts, entry script and configs: what the verdict is bound to."""
        canonical = {
            "artifacts": [
                {"name": a.name, "version": a.version, "files": [f.sha256 for f in a.files]}
                for a in self.artifacts
            ],
            "entry_script": self.entry_script_sha256,
            "configs": dict(sorted(self.config_digests.items())),
        }
        blob = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
        return "sha256:" + hashlib.sha256(blob).hexdigest()

    @property
    def short_id(self) -> str:
        return self.release_id.split(":", 1)[1][:12]

    def stage(self, name: str) -> Stage:
        if name not in self.stages:
            raise ConfigError(self.manifest, f"stages.{name}",
                              f"stage '{name}' is not defined",
                              "use one of: " + ", ".join(self.stages) + f", or add [stages.{name}]")
        return self.stages[name]

    def describe(self) -> dict[str, Any]:
        """The JSON form that goes into the verdict."""
        return {
            "name": self.name,
            "id": self.release_id,
            "manifest": str(self.manifest),
            "artifacts": [
                {"name": a.name, "version": a.version,
                 "files": [{"path": _rel(f.path, self.root), "sha256": f.sha256} for f in a.files]}
                for a in self.artifacts
            ],
            "entry_script": {"path": _rel(self.inference.entry_script, self.root),
                             "sha256": self.entry_script_sha256},
            "configs": dict(sorted(self.config_digests.items())),
        }


# ---------------------------------------------------------------------------------------------
# Parsing


def _req(table: Mapping[str, Any], key: str, kind: str, file: Path, prefix: str, fix: str) -> Any:
    if key not in table:
        raise ConfigError(file, prefix + key, "missing", fix)
    value = table[key]
    check, desc = _KINDS[kind]
    if not check(value):
        raise ConfigError(file, prefix + key, f"expected {desc}, got {_typename(value)} {value!r}", fix)
    return value


def _only(table: Mapping[str, Any], allowed: set[str], file: Path, prefix: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            raise ConfigError(file, prefix + key, "unknown key",
                              f"did you mean '{prefix}{close[0]}'?" if close else
                              "remove it; known keys: " + ", ".join(sorted(allowed)))


def parse_deployment_config(path: Path, referenced_from: Path, key: str) -> DeploymentConfig:
    data = load_yaml(path, referenced_from, key)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, None, f"expected a mapping of settings, got {_typename(data)}",
                          "write it as 'key: value' lines, e.g. 'authEnabled: False'")
    _check_mapping(data, DEPLOYMENT_SCHEMA, path)
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
        raise ConfigError(path, None, f"expected a mapping, got {_typename(data)}",
                          "write 'entryScript: score.py', 'runtime: python', 'condaFile: myenv.yml'")
    _check_mapping(data, INFERENCE_SCHEMA, path)
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


def _version_key(version: str) -> tuple[int, int, str]:
    """Order versions as Azure ML numbers them (integers), strings after and lexically."""
    return (0, int(version), "") if version.isdigit() else (1, 0, version)


def _parse_artifacts(items: Any, manifest: Path, verify: bool,
                     pick: Mapping[str, str] | None = None) -> tuple[Artifact, ...]:
    """The artifacts of the release: per name, the version ``pick`` asks for, else the highest listed.

    A manifest may list several versions of one artifact (same name, different version, each with
    its files and sha256), so a trigger can pick a version by name without editing the manifest.
    Only the picked version's files must exist and match; the others are only checked for form.
    """
    fix_list = "add [[artifacts]] tables with name, version and files = [{ path, sha256 }]"
    if not isinstance(items, list) or not items:
        raise ConfigError(manifest, "artifacts", "no artifacts listed", fix_list)
    pick = dict(pick or {})
    entries: dict[str, dict[str, tuple[ArtifactFile, ...]]] = {}
    for i, item in enumerate(items):
        prefix = f"artifacts[{i}]."
        if not isinstance(item, dict):
            raise ConfigError(manifest, f"artifacts[{i}]", "expected a table", fix_list)
        _only(item, {"name", "version", "files"}, manifest, prefix)
        name = _req(item, "name", "str", manifest, prefix, "name the registered model, e.g. 'model-scaler'")
        prefix = f"artifacts[{name}]."
        if "version" not in item:
            raise ConfigError(manifest, prefix + "version", "missing",
                              "pin the model version the release was tested with, e.g. version = 1")
        version = item["version"]
        if not (_is_int(version) and version > 0) and not (isinstance(version, str) and version.strip()):
            raise ConfigError(manifest, prefix + "version", f"expected a positive integer or a string, got {version!r}",
                              "e.g. version = 1")
        if str(version) in entries.get(name, {}):
            raise ConfigError(manifest, prefix + "version", f"version {version} listed twice",
                              "keep one entry per model name and version")
        files_raw = item.get("files")
        if not isinstance(files_raw, list) or not files_raw:
            raise ConfigError(manifest, prefix + "files", "missing or empty",
                              'list the files: files = [{ path = "models/x.onnx", sha256 = "..." }]')
        files = []
        for j, f in enumerate(files_raw):
            fprefix = f"{prefix}files[{j}]."
            if not isinstance(f, dict):
                raise ConfigError(manifest, f"{prefix}files[{j}]", "expected { path, sha256 }",
                                  'write { path = "...", sha256 = "..." }')
            _only(f, {"path", "sha256"}, manifest, fprefix)
            rel = _req(f, "path", "str", manifest, fprefix, "the file's path relative to the manifest")
            digest = _req(f, "sha256", "str", manifest, fprefix,
                          f"add sha256 = \"...\" (compute it with: releasetest hash {rel})").lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ConfigError(manifest, fprefix + "sha256", f"not a sha256 hex digest: {digest!r}",
                                  "64 hex characters, as printed by sha256sum")
            files.append(ArtifactFile(path=(manifest.parent / rel).resolve(), sha256=digest))
        entries.setdefault(name, {})[str(version)] = tuple(files)
    unknown = sorted(set(pick) - set(entries))
    if unknown:
        raise ConfigError(manifest, "artifacts", f"--release-artifact names {', '.join(unknown)}, "
                          "which the manifest does not list", "use one of: " + ", ".join(entries))
    artifacts = []
    for name, versions in entries.items():
        if name in pick and pick[name] not in versions:
            raise ConfigError(manifest, f"artifacts[{name}]",
                              f"version {pick[name]} was asked for (--release-artifact) but is not listed "
                              f"(listed: {', '.join(sorted(versions, key=_version_key))})",
                              f"add an [[artifacts]] entry for {name} version {pick[name]} with its files and "
                              "sha256, or ask for a listed version")
        version = pick.get(name) or max(versions, key=_version_key)
        for j, af in enumerate(versions[version]):
            rel = _rel(af.path, manifest.parent)
            if not af.path.is_file():
                raise ConfigError(manifest, f"artifacts[{name}].files[{j}].path",
                                  f"artifact file not found: {af.path}", "fix the path or restore the file")
            if verify:
                actual = sha256_file(af.path)
                if actual != af.sha256:
                    raise ConfigError(
                        manifest, f"artifacts[{name}].files[{j}].sha256",
                        f"artifact {name} version {version}: {rel} has sha256 {actual}, the manifest pins {af.sha256}",
                        "the file changed since it was pinned: restore the tested file, or if this is a new "
                        "model version, bump version and update sha256")
        artifacts.append(Artifact(name=name, version=version, files=versions[version]))
    return tuple(artifacts)


def _parse_data(table: Any, manifest: Path) -> DataSpec | None:
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(manifest, "data", "expected a table", "see the example release.toml")
    allowed = {"holdout", "features", "label", "classes", "expected_predictions", "golden_rows"}
    _only(table, allowed, manifest, "data.")
    holdout = manifest.parent / _req(table, "holdout", "str", manifest, "data.", "path of the holdout CSV")
    if not holdout.is_file():
        raise ConfigError(manifest, "data.holdout", f"holdout file not found: {holdout}", "fix the path")
    features = table.get("features")
    if not isinstance(features, list) or not features or not all(isinstance(x, str) for x in features):
        raise ConfigError(manifest, "data.features", "expected a non-empty list of column names",
                          'e.g. features = ["Temperature_C", ...] in the order the model takes them')
    label = _req(table, "label", "str", manifest, "data.", "name the label column")
    classes = table.get("classes")
    if not isinstance(classes, list) or len(classes) < 2:
        raise ConfigError(manifest, "data.classes", "expected a list of at least two class labels",
                          "e.g. classes = [0, 1]")
    expected = table.get("expected_predictions")
    expected_path = None
    if expected is not None:
        if not isinstance(expected, str):
            raise ConfigError(manifest, "data.expected_predictions", "expected a path", "path of the CSV")
        expected_path = manifest.parent / expected
        if not expected_path.is_file():
            raise ConfigError(manifest, "data.expected_predictions", f"file not found: {expected_path}",
                              "fix the path, or regenerate it with the training script")
    golden = table.get("golden_rows", 5)
    if not _is_int(golden) or golden < 1:
        raise ConfigError(manifest, "data.golden_rows", f"expected a positive integer, got {golden!r}",
                          "e.g. golden_rows = 5")
    return DataSpec(holdout=holdout.resolve(), features=tuple(features), label=label, classes=tuple(classes),
                    expected_predictions=expected_path.resolve() if expected_path else None, golden_rows=golden)


def load_release(manifest: Path | str, verify_artifacts: bool = True,
                 artifact_versions: Mapping[str, str] | None = None) -> Release:
    """Read and validate a release manifest and everything it names.

    ``verify_artifacts`` hashes every artifact file against the manifest; it is on for every
    deploy, so a pickle is never loaded before its digest matched. ``artifact_versions`` picks
    one of several listed versions by name (default: the highest listed).
    """
    manifest = Path(manifest).resolve()
    raw = _read_bytes(manifest, "release manifest", None, None)
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(manifest, None, f"invalid TOML: {exc}", "fix the syntax at that line") from None
    _only(doc, {"release", "stages", "artifacts", "data", *SUITE_TABLES}, manifest, "")
    rel = doc.get("release")
    if not isinstance(rel, dict):
        raise ConfigError(manifest, "release", "missing [release] table",
                          'add [release] with name = "..." and inference_config = "InferenceConfig.yml"')
    _only(rel, {"name", "inference_config"}, manifest, "release.")
    name = _req(rel, "name", "str", manifest, "release.", 'e.g. name = "port-weather"')
    inf_rel = _req(rel, "inference_config", "str", manifest, "release.",
                   'e.g. inference_config = "InferenceConfig.yml"')
    inference = parse_inference_config(manifest.parent / inf_rel, manifest)

    stages_raw = doc.get("stages")
    if not isinstance(stages_raw, dict) or not stages_raw:
        raise ConfigError(manifest, "stages", "no stages defined",
                          'add [stages.devtest] deployment_config = "AciDeploymentConfig.yml"')
    names = list(stages_raw)
    stages: dict[str, Stage] = {}
    config_digests: dict[str, str] = {}
    for idx, sname in enumerate(names):
        table = stages_raw[sname]
        prefix = f"stages.{sname}."
        if not isinstance(table, dict):
            raise ConfigError(manifest, f"stages.{sname}", "expected a table", 'deployment_config = "..."')
        _only(table, {"deployment_config", "promote_to", "requires_approval"}, manifest, prefix)
        dc_rel = _req(table, "deployment_config", "str", manifest, prefix, "path of the v1 deployment config YAML")
        dc_path = (manifest.parent / dc_rel).resolve()
        dc = parse_deployment_config(dc_path, manifest, prefix + "deployment_config")
        config_digests[_rel(dc_path, manifest.parent)] = sha256_file(dc_path)
        promote_to = table.get("promote_to", names[idx + 1] if idx + 1 < len(names) else None)
        if promote_to is not None and promote_to not in stages_raw:
            raise ConfigError(manifest, prefix + "promote_to", f"unknown stage {promote_to!r}",
                              "name one of: " + ", ".join(names))
        approval = table.get("requires_approval", False)
        if not _is_bool(approval):
            raise ConfigError(manifest, prefix + "requires_approval", f"expected true or false, got {approval!r}",
                              "requires_approval = true makes promotion to this stage wait for releasetest approve")
        stages[sname] = Stage(name=sname, deployment=dc, promote_to=promote_to, requires_approval=approval)

    artifacts = _parse_artifacts(doc.get("artifacts"), manifest, verify_artifacts, artifact_versions)
    data = _parse_data(doc.get("data"), manifest)

    suite_tables: dict[str, dict[str, Any]] = {}
    for suite in SUITE_TABLES:
        table = doc.get(suite, {})
        if not isinstance(table, dict):
            raise ConfigError(manifest, suite, "expected a table", f"write it as [{suite}] with key = value lines")
        suite_tables[suite] = table

    for p in (inference.path, inference.conda_file):
        if p is not None:
            config_digests[_rel(p, manifest.parent)] = sha256_file(p)
    return Release(
        manifest=manifest,
        name=name,
        inference=inference,
        stages=stages,
        artifacts=artifacts,
        data=data,
        entry_script_sha256=sha256_file(inference.entry_script),
        config_digests=config_digests,
        suite_tables=suite_tables,
    )
