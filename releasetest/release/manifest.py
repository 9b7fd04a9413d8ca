"""The release: manifest, Azure ML config files and artifacts, validated before any deploy.

The manifest is read with tomllib and checked key by key. A v1 release names an inference config and
per-stage deployment configs (parsed by :mod:`releasetest.azureml.v1`); a v2 release names per-stage
CLI v2 deployment YAML (and optionally the endpoint YAML), whose model, code and environment are the
release (parsed by :mod:`releasetest.azureml.v2`). Either way a typo fails here, naming the file and
key, rather than as a mysterious server error later. Artifacts are hashed before anything loads them: the gate
must test exactly what the manifest pins.
"""


from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import tomllib

from releasetest.azureml.v1 import DeploymentConfig, InferenceConfig, parse_deployment_config, parse_inference_config
from releasetest.azureml.v2 import DeploymentV2, parse_deployment, parse_endpoint, tree_sha256
from releasetest.errors import ConfigError
from releasetest.files import read_bytes, sha256_file, short_id
from releasetest.release.production import ProductionSpec, parse_production
from releasetest.suite_names import SUITES
from releasetest.tables import Key, Table, check, check_table

#: Folders of a code folder that are not the release: caches, version control, virtual
#: environments and the gate's own outputs (a server run writes ``__pycache__`` beside the entry script;
#: the schema suite's hypothesis keeps its cache of source constants in ``.hypothesis`` of the working folder).
NOT_CODE = frozenset({"__pycache__", ".git", ".hg", ".svn", ".venv", "venv", ".tox", ".nox", ".pytest_cache",
                      ".hypothesis", ".mypy_cache", ".ruff_cache", "node_modules", "releasetest-out"})

#: Manifest tables that configure one suite each; their contents are checked by the suite's own
#: parser (see :mod:`releasetest.checks.registry`), before deploy.
SUITE_TABLES = SUITES


MANIFEST = Table({
    "release": Table({
        "name": Key("str", "name the release", required=True, ge=1, example="port-weather"),
        "inference_config": Key("str", "path of the v1 inference config YAML (a v1 release only)",
                                example="InferenceConfig.yml"),
    }, 'add [release] with name = "..." (and, for a v1 release, inference_config = "InferenceConfig.yml")',
        required=True),
    "stages": Key("mapping", 'add [stages.devtest] with deployment = "blue-deployment.yml" (v2) or '
                  'deployment_config = "AciDeploymentConfig.yml" (v1)', required=True, ge=1),
    "artifacts": Key("list", "add [[artifacts]] tables with name, version and files = [{ path, sha256 }] "
                     "(or only name and version, to take that version from the workspace's model registry)",
                     ge=1),
    "data": Key("mapping", "see the example release.toml"),
    "production": Key("mapping", 'write [production] traffic = "data/production/**/*.jsonl"'),
    **{suite: Key("mapping", f"write it as [{suite}] with key = value lines", default={}) for suite in SUITE_TABLES},
})


STAGE = Table({
    "deployment_config": Key("str", "path of the v1 deployment config YAML", ge=1, example="AciDeploymentConfig.yml"),
    "deployment": Key("str", "path of the v2 online deployment YAML", ge=1, example="blue-deployment.yml"),
    "endpoint": Key("str", "path of the v2 online endpoint YAML", ge=1, example="endpoint.yml"),
    "promote_to": Key("str", "the stage a passing gate promotes to (default: the next one listed)"),
    "requires_approval": Key("bool", "requires_approval = true makes promotion to this stage wait for "
                             "releasetest approve", default=False),
}, 'deployment = "blue-deployment.yml" (v2) or deployment_config = "AciDeploymentConfig.yml" (v1)')


ARTIFACT = Table({
    "name": Key("str", "name the registered model", required=True, ge=1, example="model-scaler"),
    "version": Key("any", "pin the model version the release was tested with", required=True, example=1),
    "files": Key("list", 'list the files: files = [{ path = "models/x.onnx", sha256 = "..." }]; leave it out '
                 "to take the version from the workspace's model registry", ge=1),
}, "write name, version and files = [{ path, sha256 }], or name and version of a registered model")


ARTIFACT_FILE = Table({
    "path": Key("str", "the file's path relative to the manifest", required=True),
    "sha256": Key("str", "64 hex characters; compute them with: releasetest hash PATH", required=True),
}, 'write { path = "...", sha256 = "..." }')


#: What a release's model predicts; the gate's metrics, baselines and comparisons follow from it
#: (:mod:`releasetest.checks.tasks`).
TASKS = ("classification", "regression")


#: Default ``[data] parity_tolerance`` of a regression: JSON carries floats exactly, so only a
#: different float path (float32 vs float64, another BLAS) moves a served prediction at all.
DEFAULT_TOLERANCE = {"abs": 1e-6, "rel": 1e-6}


TOLERANCE = Table({
    "abs": Key("number", "the absolute difference always allowed", default=0.0, ge=0, example=1e-6),
    "rel": Key("number", "the difference allowed per unit of the expected value", default=0.0, ge=0,
               example=1e-6),
}, "write parity_tolerance = { abs = 1e-6, rel = 1e-6 }", nonempty=True)


DATA = Table({
    "holdout": Key("str", "path of the holdout CSV", required=True),
    "task": Key("str", "what the model predicts", choices=TASKS),
    "features": Key("list", "the feature columns in the order the model takes them", required=True, ge=1,
                    example=["Temperature_C", "..."]),
    "label": Key("str", "name the label column", required=True),
    "classes": Key("list", "the class labels, in the order the model's probabilities come", ge=2,
                   example=[0, 1]),
    "expected_predictions": Key("str", "path of the CSV of the predictions the trained model gives"),
    "golden_rows": Key("int", "holdout rows compared one by one", default=5, ge=1),
    "input": Key("str", "the request body's format (auto: read it from the published swagger)",
                 default="auto", choices=("auto", "rows", "records", "input_data", "named")),
    "input_key": Key("str", "the body key that holds the rows; a dotted path into a named-input dict",
                     ge=1, example="Inputs.data"),
    "output": Table({
        "predictions": Key("str", "the answer key holding one prediction per row", ge=1, example="result"),
        "probabilities": Key("str", "the answer key holding one probability row per row", default="probabilities",
                             ge=1, example="proba"),
    }, 'write output = { predictions = "result", probabilities = "proba" }'),
    "parity_tolerance": TOLERANCE,
}, "see the example release.toml")


def _rel(path: Path, root: Path) -> str:
    """Path as the user wrote it relative to the manifest, with forward slashes on every OS."""
    return Path(os.path.relpath(path, root)).as_posix()


@dataclass(frozen=True)
class Stage:
    name: str
    deployment: DeploymentConfig | DeploymentV2
    promote_to: str | None
    #: Promotion *to* this stage needs a recorded human approval (continuous delivery); without it
    #: a passing gate promotes on its own (continuous deployment).
    requires_approval: bool = False


@dataclass(frozen=True)
class ArtifactFile:
    path: Path
    sha256: str


@dataclass(frozen=True)
class RegistrySource:
    """Where a version taken from the workspace's model registry came from."""

    asset_id: str
    tags: dict[str, str]


class Resolver(Protocol):
    """Fetches ``name, version`` from the workspace's model registry, or from the Azure ML registry
    ``registry``: its files (laid out and hashed) and source."""

    def __call__(self, name: str, version: str,
                 registry: str | None = None) -> tuple[tuple[ArtifactFile, ...], RegistrySource]: ...


@dataclass(frozen=True)
class Artifact:
    name: str
    version: str
    files: tuple[ArtifactFile, ...]
    #: Set when the files were downloaded from the registry rather than listed in the manifest.
    registry: RegistrySource | None = None


@dataclass(frozen=True)
class Tolerance:
    """How close a served prediction must be to the one recorded at training time:
    ``|got - expected| <= abs + rel * |expected|`` (numpy.isclose's rule). Zero is exact equality,
    which is how class labels compare; the golden check and parity both ask :meth:`agree`."""

    abs: float = 0.0
    rel: float = 0.0

    @property
    def exact(self) -> bool:
        return self.abs == 0 and self.rel == 0

    def agree(self, got: Any, expected: Any) -> bool:
        if self.exact:
            return bool(got == expected)
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            return False
        return abs(float(got) - float(expected)) <= self.abs + self.rel * abs(float(expected))

    def mismatches(self, got: Sequence[Any], expected: Sequence[Any]) -> list[int]:
        """Indices where ``got`` differs from ``expected`` beyond the tolerance."""
        return [i for i, (g, e) in enumerate(zip(got, expected, strict=True)) if not self.agree(g, e)]

    def describe(self) -> str:
        return "exactly" if self.exact else f"within abs {self.abs:g} + rel {self.rel:g}"


#: Class labels compare exactly.
EXACT = Tolerance()


@dataclass(frozen=True)
class DataSpec:
    holdout: Path
    features: tuple[str, ...]
    label: str
    #: Empty for a regression.
    classes: tuple[Any, ...]
    expected_predictions: Path | None
    golden_rows: int
    #: Request format (``auto``, ``rows``, ``records``, ``input_data``, ``named``) and where the rows go.
    input: str = "auto"
    input_key: str | None = None
    #: Answer keys; None: a bare list or a ``predictions``/``result`` mapping.
    output_predictions: str | None = None
    output_probabilities: str = "probabilities"
    task: str = "classification"
    tolerance: Tolerance = EXACT


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
    #: ``[production]``: the recorded traffic the drift and shadow suites judge; None without any.
    production: ProductionSpec | None = None
    #: Everything that decided a verdict, by name (``code helpers.py``, ``release.toml [acceptance]``,
    #: ``holdout data/holdout.csv`` ...): its sha256, as read when the release was loaded.
    components: dict[str, str] = field(default_factory=dict)
    #: A v2 release: the deployment whose model, code and environment the release is (every stage's
    #: deployment names the same ones); None for a v1 release.
    v2: DeploymentV2 | None = None

    @property
    def root(self) -> Path:
        return self.manifest.parent

    @property
    def release_id(self) -> str:
        """Digest over every component (:func:`components`): what the verdict is bound to."""
        blob = json.dumps(dict(sorted(self.components.items())), sort_keys=True, separators=(",", ":")).encode()
        return "sha256:" + hashlib.sha256(blob).hexdigest()

    def changes_since(self, tested: Mapping[str, Any]) -> list[str]:
        """What differs from the ``components`` a verdict's release recorded, one phrase each
        (``code helpers.py changed``, ``release.toml [acceptance] changed``)."""
        old = tested.get("components")
        if not isinstance(old, Mapping):
            return ["the verdict records no components (written by an earlier releasetest)"]
        new = self.components
        return ([f"{k} changed" for k in sorted(old.keys() & new.keys()) if old[k] != new[k]]
                + [f"{k} added" for k in sorted(new.keys() - old.keys())]
                + [f"{k} removed" for k in sorted(old.keys() - new.keys())])

    @property
    def short_id(self) -> str:
        return short_id(self.release_id)

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
                 "files": [{"path": _rel(f.path, self.root), "sha256": f.sha256} for f in a.files],
                 **({"registry": {"asset_id": a.registry.asset_id, "tags": a.registry.tags}} if a.registry else {})}
                for a in self.artifacts
            ],
            "entry_script": {"path": _rel(self.inference.entry_script, self.root),
                             "sha256": self.entry_script_sha256},
            "configs": dict(sorted(self.config_digests.items())),
            "components": dict(sorted(self.components.items())),
        }

    def changed_since(self, tested: Mapping[str, Any]) -> str | None:
        """One line naming what changed since ``tested`` (a verdict's ``release``), None when nothing did."""
        if self.release_id == tested.get("id"):
            return None
        changes = self.changes_since(tested) or ["the release id's form (re-run the gate)"]
        shown = ", ".join(changes[:6]) + (f" and {len(changes) - 6} more" if len(changes) > 6 else "")
        return (f"release changed since the test: the verdict is for {tested.get('id')}, the manifest and files now "
                f"give {self.release_id}: {shown}; re-run the gate")


def _table_digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def code_folder(inference: InferenceConfig) -> Path:
    """The folder deployed with the entry script: the inference config's ``sourceDirectory``, else the
    entry script's own folder (Azure ML uploads it whole; the server imports from it)."""
    source = inference.raw.get("sourceDirectory") if isinstance(inference.raw, Mapping) else None
    return (inference.path.parent / source).resolve() if isinstance(source, str) else inference.entry_script.parent


def components(manifest: Path, doc: Mapping[str, Any], inference: InferenceConfig, artifacts: Sequence[Artifact],
               data: DataSpec | None, config_digests: Mapping[str, str]) -> dict[str, str]:
    """Everything that decides a verdict, named and hashed: the release id is their digest.

    The picked artifacts' files; the v1 configs; every ``release.toml`` table but ``[[artifacts]]``
    (the gate settings: suites, thresholds, data spec, stages; comments do not count); the holdout
    and expected predictions; and every file of the code folder (:func:`code_folder`, without
    :data:`NOT_CODE`) that none of these already covers.
    """
    root = manifest.parent
    found: dict[str, str] = {}
    for a in artifacts:
        for f in a.files:
            found[f"artifact {a.name}:{a.version} {_rel(f.path, root)}"] = f.sha256
    found.update({f"config {name}": digest for name, digest in config_digests.items()})
    found.update({f"release.toml [{name}]": _table_digest(table) for name, table in doc.items() if name != "artifacts"})
    covered = {manifest, *(f.path for a in artifacts for f in a.files),
               *((root / name).resolve() for name in config_digests)}
    if data is not None:
        named = [("holdout", data.holdout), ("expected predictions", data.expected_predictions)]
        for what, path in named:
            if path is not None:
                found[f"{what} {_rel(path, root)}"] = sha256_file(path)
                covered.add(path)
    # The walk starts from the resolved folder and does not follow directory links, so only a
    # file that is itself a link needs resolving (resolving every file stats each of its parents).
    for here, dirs, files in os.walk(code_folder(inference).resolve()):
        dirs[:] = sorted(d for d in dirs if d not in NOT_CODE)
        for name in sorted(files):
            path = Path(here, name)
            if path.is_symlink():
                path = path.resolve()
            if path not in covered and path.is_file():
                found[f"code {_rel(path, root)}"] = sha256_file(path)
    return found


def _version_key(version: str) -> tuple[int, int, str]:
    """Order versions as Azure ML numbers them (integers), strings after and lexically."""
    return (0, int(version), "") if version.isdigit() else (1, 0, version)


def _parse_artifacts(items: list[Any], manifest: Path, verify: bool, pick: Mapping[str, str] | None = None,
                     resolve: Resolver | None = None) -> tuple[Artifact, ...]:
    """The artifacts of the release: per name, the version ``pick`` asks for, else the highest listed.

    A manifest may list several versions of one artifact (same name, different version, each with
    its files and sha256), so a trigger can pick a version by name without editing the manifest.
    Only the picked version's files must exist and match; the others are only checked for form.
    A version listed without files, or picked but not listed, comes from the model registry
    through ``resolve``.
    """
    pick = dict(pick or {})
    entries: dict[str, dict[str, tuple[ArtifactFile, ...] | None]] = {}
    for i, item in enumerate(items):
        named = item.get("name") if isinstance(item, dict) else None
        where = f"artifacts[{named}]" if isinstance(named, str) and named else f"artifacts[{i}]"
        values = check_table(item, ARTIFACT, manifest, where)
        name, version = values["name"], values["version"]
        if not (isinstance(version, int) and not isinstance(version, bool) and version > 0) \
                and not (isinstance(version, str) and version.strip()):
            raise ConfigError(manifest, f"{where}.version", f"expected a positive integer or a string, got {version!r}",
                              "e.g. version = 1")
        if str(version) in entries.get(name, {}):
            raise ConfigError(manifest, f"{where}.version", f"version {version} listed twice",
                              "keep one entry per model name and version")
        if values["files"] is None:
            entries.setdefault(name, {})[str(version)] = None
            continue
        files = []
        for j, f in enumerate(values["files"]):
            fvalues = check_table(f, ARTIFACT_FILE, manifest, f"{where}.files[{j}]")
            digest = fvalues["sha256"].lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                written = (manifest.parent / fvalues["path"]).is_file()
                raise ConfigError(manifest, f"{where}.files[{j}].sha256", f"not a sha256 hex digest: {digest!r}",
                                  ("" if written else f"{fvalues['path']} is not written yet: run the release's "
                                   "train.py, then ") + f"run releasetest hash --write {manifest.name} to pin it "
                                  "(64 hex characters)")
            files.append(ArtifactFile(path=(manifest.parent / fvalues["path"]).resolve(), sha256=digest))
        entries.setdefault(name, {})[str(version)] = tuple(files)
    unknown = sorted(set(pick) - set(entries))
    if unknown:
        raise ConfigError(manifest, "artifacts", f"--release-artifact names {', '.join(unknown)}, "
                          "which the manifest does not list", "use one of: " + ", ".join(entries))
    artifacts = []
    for name, versions in entries.items():
        version = pick.get(name) or max(versions, key=_version_key)
        listed = versions.get(version)
        if listed is None:
            if resolve is None:
                asked = ("was asked for (--release-artifact) but is not listed "
                         f"(listed: {', '.join(sorted(versions, key=_version_key))})" if version not in versions
                         else "is listed by registry reference only")
                raise ConfigError(manifest, f"artifacts[{name}]", f"version {version} {asked}, and no model "
                                  "registry was given to fetch it from",
                                  f"add its files and sha256 to the [[artifacts]] entry for {name} version {version}, "
                                  "or run where the workspace config is (aml_config/config.json beside the "
                                  "manifest, or --release-workspace-config)")
            fetched, source = resolve(name, version)
            artifacts.append(Artifact(name=name, version=version, files=fetched, registry=source))
            continue
        for j, af in enumerate(listed):
            rel = _rel(af.path, manifest.parent)
            if not af.path.is_file():
                raise ConfigError(manifest, f"artifacts[{name}].files[{j}].path",
                                  f"artifact file not found: {af.path}",
                                  "fix the path or restore the file (a new release: run its train.py to write it)")
            if verify:
                actual = sha256_file(af.path)
                if actual != af.sha256:
                    raise ConfigError(
                        manifest, f"artifacts[{name}].files[{j}].sha256",
                        f"artifact {name} version {version}: {rel} has sha256 {actual}, the manifest pins {af.sha256}",
                        "the file changed since it was pinned: restore the tested file, or if this is a new "
                        f"model version, bump version and pin it with releasetest hash --write {manifest.name}")
        artifacts.append(Artifact(name=name, version=version, files=listed))
    return tuple(artifacts)


def _parse_data(table: dict[str, Any] | None, manifest: Path) -> DataSpec | None:
    if table is None:
        return None
    values = check_table(table, DATA, manifest, "data")
    holdout = manifest.parent / values["holdout"]
    if not holdout.is_file():
        raise ConfigError(manifest, "data.holdout", f"holdout file not found: {holdout}",
                          "fix the path (a new release: run its train.py to write it)")
    features = values["features"]
    if not all(isinstance(x, str) for x in features):
        raise ConfigError(manifest, "data.features", "expected a list of column names",
                          'e.g. features = ["Temperature_C", ...] in the order the model takes them')
    expected_path = None
    if values["expected_predictions"] is not None:
        expected_path = manifest.parent / values["expected_predictions"]
        if not expected_path.is_file():
            raise ConfigError(manifest, "data.expected_predictions", f"file not found: {expected_path}",
                              "fix the path, or regenerate it with the training script")
    if values["input"] == "named" and values["input_key"] is None:
        raise ConfigError(manifest, "data.input_key", 'input = "named" needs the key that holds the rows',
                          'e.g. input_key = "Inputs.data" for {"Inputs": {"data": [[...]], ...}}')
    task, classes = _task_and_classes(values, manifest)
    if task == "classification" and "parity_tolerance" in table:
        raise ConfigError(manifest, "data.parity_tolerance", "applies to a regression only: class labels "
                          "compare exactly", 'remove it, or set task = "regression"')
    tolerance = Tolerance(**(values["parity_tolerance"] if "parity_tolerance" in table else
                             (DEFAULT_TOLERANCE if task == "regression" else {})))
    return DataSpec(holdout=holdout.resolve(), features=tuple(features), label=values["label"],
                    classes=classes, expected_predictions=expected_path.resolve() if expected_path else None,
                    golden_rows=values["golden_rows"], task=task, tolerance=tolerance,
                    input=values["input"], input_key=values["input_key"],
                    output_predictions=values["output"]["predictions"],
                    output_probabilities=values["output"]["probabilities"])


def _task_and_classes(values: dict[str, Any], manifest: Path) -> tuple[str, tuple[Any, ...]]:
    """``task`` defaults to classification when ``classes`` are given; a regression has none."""
    task, classes = values["task"], values["classes"]
    if task is None:
        if classes is None:
            raise ConfigError(manifest, "data.task", "missing, and there are no classes to infer it from",
                              'set task = "regression", or task = "classification" with classes = [...]')
        task = "classification"
    if task == "regression":
        if classes is not None:
            raise ConfigError(manifest, "data.classes", "a regression has no classes",
                              'remove classes, or set task = "classification"')
        return task, ()
    if classes is None:
        raise ConfigError(manifest, "data.classes", "missing: a classification names its classes",
                          "list them in the order of the model's probabilities, e.g. classes = [0, 1]")
    if len(set(map(repr, classes))) != len(classes):
        raise ConfigError(manifest, "data.classes", f"a class is listed twice in {classes}", "list each once")
    return task, tuple(classes)


def load_release(manifest: Path | str, verify_artifacts: bool = True,
                 artifact_versions: Mapping[str, str] | None = None, registry: Resolver | None = None,
                 traffic: Path | str | None = None) -> Release:
    """Read and validate a release manifest and everything it names.

    ``verify_artifacts`` hashes every artifact file against the manifest; it is on for every
    deploy, so a pickle is never loaded before its digest matched. ``artifact_versions`` picks
    a version by name (default: the highest listed); ``registry`` fetches a picked version the
    manifest does not list, or lists by reference only
    (:class:`releasetest.azureml.registry.ModelRegistry`). ``traffic`` (``--release-traffic``)
    replaces ``[production] traffic``.
    """
    manifest = Path(manifest).resolve()
    raw = read_bytes(manifest, "release manifest", None, None)
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(manifest, None, f"invalid TOML: {exc}", "fix the syntax at that line") from None
    values = check(doc, MANIFEST, manifest)
    rel = values["release"]
    stages_raw = values["stages"]
    names = list(stages_raw)
    tables = {sname: check_table(stages_raw[sname], STAGE, manifest, f"stages.{sname}") for sname in names}
    v2 = _release_format(rel, tables, manifest)
    stages: dict[str, Stage] = {}
    config_digests: dict[str, str] = {}
    for idx, sname in enumerate(names):
        prefix = f"stages.{sname}."
        table = tables[sname]
        dc: DeploymentConfig | DeploymentV2
        if v2:
            endpoint = None
            if table["endpoint"] is not None:
                ep_path = (manifest.parent / table["endpoint"]).resolve()
                endpoint = parse_endpoint(ep_path, manifest, prefix + "endpoint")
                config_digests[_rel(ep_path, manifest.parent)] = sha256_file(ep_path)
            dc_path = (manifest.parent / table["deployment"]).resolve()
            dc = parse_deployment(dc_path, manifest, prefix + "deployment", endpoint)
        else:
            dc_path = (manifest.parent / table["deployment_config"]).resolve()
            dc = parse_deployment_config(dc_path, manifest, prefix + "deployment_config")
        config_digests[_rel(dc_path, manifest.parent)] = sha256_file(dc_path)
        promote_to = table["promote_to"] if "promote_to" in stages_raw[sname] else (
            names[idx + 1] if idx + 1 < len(names) else None)
        if promote_to is not None and promote_to not in stages_raw:
            raise ConfigError(manifest, prefix + "promote_to", f"unknown stage {promote_to!r}",
                              "name one of: " + ", ".join(names))
        stages[sname] = Stage(name=sname, deployment=dc, promote_to=promote_to,
                              requires_approval=table["requires_approval"])

    suite_tables = {suite: dict(values[suite]) for suite in SUITE_TABLES}
    production = parse_production(values["production"], manifest, traffic)
    if v2:
        deployment, inference, model_artifacts = _v2_release(stages, manifest, config_digests, registry)
        pinned = _parse_artifacts(values["artifacts"] or [], manifest, verify_artifacts, artifact_versions,
                                  registry) if values["artifacts"] else ()
        artifacts = model_artifacts + pinned
    else:
        deployment = None
        inference = parse_inference_config(manifest.parent / rel["inference_config"], manifest)
        artifacts = _parse_artifacts(values["artifacts"], manifest, verify_artifacts, artifact_versions, registry)
    # After the artifacts: a new release's first missing file is its model, whose fix names train.py.
    data = _parse_data(values["data"], manifest)
    for p in (inference.path, inference.conda_file):
        if p is not None:
            config_digests[_rel(p, manifest.parent)] = sha256_file(p)
    covered = components(manifest, doc, inference, artifacts, data, config_digests)
    return Release(
        manifest=manifest,
        name=rel["name"],
        inference=inference,
        stages=stages,
        artifacts=artifacts,
        data=data,
        entry_script_sha256=sha256_file(inference.entry_script),
        config_digests=config_digests,
        suite_tables=suite_tables,
        production=production,
        components=covered,
        v2=deployment,
    )



def _release_format(rel: dict[str, Any], tables: dict[str, dict[str, Any]], manifest: Path) -> bool:
    """True for a v2 release (every stage names a ``deployment``), False for v1; a mix is refused."""
    v2 = [n for n, t in tables.items() if t["deployment"] is not None]
    v1 = [n for n, t in tables.items() if t["deployment_config"] is not None]
    for name, table in tables.items():
        if table["deployment"] is not None and table["deployment_config"] is not None:
            raise ConfigError(manifest, f"stages.{name}", "names both deployment (v2) and deployment_config (v1)",
                              "keep deployment for a v2 release, deployment_config for a v1 release")
        if table["deployment"] is None and table["deployment_config"] is None:
            if v1 or rel["inference_config"] is not None:
                raise ConfigError(manifest, f"stages.{name}.deployment_config", "missing",
                                  'add deployment_config = "AciDeploymentConfig.yml"')
            raise ConfigError(manifest, f"stages.{name}.deployment", "missing",
                              'add deployment = "blue-deployment.yml" (v2) or deployment_config = '
                              '"AciDeploymentConfig.yml" (v1)')
        if table["endpoint"] is not None and table["deployment"] is None:
            raise ConfigError(manifest, f"stages.{name}.endpoint", "an endpoint YAML belongs to a v2 release",
                              'remove it, or describe the stage with deployment = "blue-deployment.yml"')
    if v2 and v1:
        raise ConfigError(manifest, f"stages.{v1[0]}.deployment_config",
                          f"stage {v1[0]} is v1 while stage {v2[0]} is v2; a release is one or the other",
                          f"describe stage {v1[0]} with a v2 deployment YAML too")
    if v2 and rel["inference_config"] is not None:
        raise ConfigError(manifest, "release.inference_config", "a v2 release takes its code and environment "
                          "from the deployment YAML", "remove inference_config")
    if not v2 and rel["inference_config"] is None:
        raise ConfigError(manifest, "release.inference_config", "missing",
                          'add inference_config = "InferenceConfig.yml", or use v2 stages: deployment = "..."')
    return bool(v2)


#: The scoring script the gate runs for an MLflow model deployed without code_configuration, as Azure
#: ML's no-code deployment generates one.
MLFLOW_SCORE = Path(__file__).resolve().parent.parent / "endpoint" / "server" / "nocode" / "mlflow_score.py"


def _v2_release(stages: dict[str, Stage], manifest: Path, config_digests: dict[str, str],
                registry: Resolver | None) -> tuple[DeploymentV2, InferenceConfig, tuple[Artifact, ...]]:
    """The release a v2 manifest describes: one model, code and environment, named alike by every stage."""
    deployments = [(name, s.deployment) for name, s in stages.items() if isinstance(s.deployment, DeploymentV2)]
    first_name, first = deployments[0]

    def what(d: DeploymentV2) -> tuple[Any, ...]:
        return (d.model, d.code_dir, d.scoring_script, d.environment)

    for name, d in deployments[1:]:
        if what(d) != what(first):
            raise ConfigError(manifest, f"stages.{name}.deployment",
                              f"{d.path.name} names another model, code or environment than {first.path.name} "
                              f"of stage {first_name}", "a release is one model, code and environment: make every "
                              "stage's deployment YAML name the same ones")
    model = first.model
    if model.path is not None:
        files = tuple(ArtifactFile(path=p, sha256=sha256_file(p)) for p in model.files())
        if not files:
            raise ConfigError(first.path, "model.path", f"the model folder {model.path} holds no files",
                              "point at the folder the training wrote")
        artifact = Artifact(name=model.name, version=model.version, files=files)
    else:
        assert model.ref is not None
        if registry is None:
            raise ConfigError(first.path, "model", f"{model.ref.text} is a registered model, and no model "
                              "registry was given to fetch it from",
                              "run where the workspace config is (aml_config/config.json beside the manifest, or "
                              "--release-workspace-config), or give model: {path: ...}")
        fetched, source = registry(model.ref.name, model.version, model.ref.registry)
        artifact = Artifact(name=model.name, version=model.version, files=fetched, registry=source)
    if first.code_dir is not None:
        config_digests[_rel(first.code_dir, manifest.parent) + "/"] = tree_sha256(first.code_dir)
    conda = first.environment.conda_file
    if first.scoring_script is not None:
        script = first.scoring_script
    else:
        script = MLFLOW_SCORE
        if model.path is None or not (model.path / "MLmodel").is_file():
            raise ConfigError(first.path, "model.path", "an mlflow_model without code_configuration needs the "
                              "MLflow model folder (with its MLmodel file)", "point model.path at the folder "
                              "mlflow.<flavor>.save_model wrote")
        if conda is None and (model.path / "conda.yaml").is_file():
            conda = model.path / "conda.yaml"
    inference = InferenceConfig(path=first.path, entry_script=script, runtime="python", conda_file=conda, raw={})
    return first, inference, (artifact,)
