"""The release: manifest, Azure ML v1 config files and artifacts, validated before any deploy.

The manifest is read with tomllib and checked key by key; the v1 files it names are parsed by
:mod:`releasetest.azureml.v1`, so a typo fails here, naming the file and key, rather than as a
mysterious server error later. Artifacts are hashed before anything loads them: the gate
must test exactly what the manifest pins.
"""


from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from releasetest.azureml.v1 import DeploymentConfig, InferenceConfig, parse_deployment_config, parse_inference_config
from releasetest.checks.names import SUITES
from releasetest.errors import ConfigError
from releasetest.files import read_bytes, sha256_file
from releasetest.tables import is_bool, is_int, only_keys, require

#: Manifest tables that configure one suite each; their contents are checked by the suite's own
#: parser (see :mod:`releasetest.checks.registry`), before deploy.
SUITE_TABLES = SUITES


def _rel(path: Path, root: Path) -> str:
    """Path as the user wrote it relative to the manifest, with forward slashes on every OS."""
    return Path(os.path.relpath(path, root)).as_posix()


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
        only_keys(item, {"name", "version", "files"}, manifest, prefix)
        name = require(item, "name", "str", manifest, prefix, "name the registered model, e.g. 'model-scaler'")
        prefix = f"artifacts[{name}]."
        if "version" not in item:
            raise ConfigError(manifest, prefix + "version", "missing",
                              "pin the model version the release was tested with, e.g. version = 1")
        version = item["version"]
        if not (is_int(version) and version > 0) and not (isinstance(version, str) and version.strip()):
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
            only_keys(f, {"path", "sha256"}, manifest, fprefix)
            rel = require(f, "path", "str", manifest, fprefix, "the file's path relative to the manifest")
            digest = require(f, "sha256", "str", manifest, fprefix,
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
    only_keys(table, allowed, manifest, "data.")
    holdout = manifest.parent / require(table, "holdout", "str", manifest, "data.", "path of the holdout CSV")
    if not holdout.is_file():
        raise ConfigError(manifest, "data.holdout", f"holdout file not found: {holdout}", "fix the path")
    features = table.get("features")
    if not isinstance(features, list) or not features or not all(isinstance(x, str) for x in features):
        raise ConfigError(manifest, "data.features", "expected a non-empty list of column names",
                          'e.g. features = ["Temperature_C", ...] in the order the model takes them')
    label = require(table, "label", "str", manifest, "data.", "name the label column")
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
    if not is_int(golden) or golden < 1:
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
    raw = read_bytes(manifest, "release manifest", None, None)
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(manifest, None, f"invalid TOML: {exc}", "fix the syntax at that line") from None
    only_keys(doc, {"release", "stages", "artifacts", "data", *SUITE_TABLES}, manifest, "")
    rel = doc.get("release")
    if not isinstance(rel, dict):
        raise ConfigError(manifest, "release", "missing [release] table",
                          'add [release] with name = "..." and inference_config = "InferenceConfig.yml"')
    only_keys(rel, {"name", "inference_config"}, manifest, "release.")
    name = require(rel, "name", "str", manifest, "release.", 'e.g. name = "port-weather"')
    inf_rel = require(rel, "inference_config", "str", manifest, "release.",
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
        only_keys(table, {"deployment_config", "promote_to", "requires_approval"}, manifest, prefix)
        dc_rel = require(table, "deployment_config", "str", manifest, prefix, "path of the v1 deployment config YAML")
        dc_path = (manifest.parent / dc_rel).resolve()
        dc = parse_deployment_config(dc_path, manifest, prefix + "deployment_config")
        config_digests[_rel(dc_path, manifest.parent)] = sha256_file(dc_path)
        promote_to = table.get("promote_to", names[idx + 1] if idx + 1 < len(names) else None)
        if promote_to is not None and promote_to not in stages_raw:
            raise ConfigError(manifest, prefix + "promote_to", f"unknown stage {promote_to!r}",
                              "name one of: " + ", ".join(names))
        approval = table.get("requires_approval", False)
        if not is_bool(approval):
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

