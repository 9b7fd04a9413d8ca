"""``releasetest migrate``: the CLI v2 release of a v1 release, in a folder of its own.

What is written: ``model/`` (the one folder model v2 mounts: a single artifact's files, or several
artifacts in the v1 layout ``<name>/<version>/<file>``), ``src/`` (the source directory, or the
entry script, unchanged, and ``score_v2.py``), ``environment/<conda file>``, per stage
``<stage>-endpoint.yml`` and ``<stage>-deployment.yml`` (the settings :func:`plan_for` maps from the
v1 deployment config), the holdout files, and ``release.toml`` (the original with
``inference_config``, ``deployment_config`` and ``[[artifacts]]`` replaced by the v2 keys).

Why a wrapper entry script: v2 mounts a folder model under its folder name
(``AZUREML_MODEL_DIR/model/...``) where v1 named the model folder itself, so ``score_v2.py`` points
``AZUREML_MODEL_DIR`` one folder down and imports ``init`` and ``run`` from the untouched entry
script, whose decorators (and so the published swagger) stay as they were.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from releasetest.azureml.mapping import plan_for
from releasetest.errors import ConfigError
from releasetest.release.manifest import Release

#: The model folder of the migrated release (mounted as ``AZUREML_MODEL_DIR/model``).
MODEL_FOLDER = "model"
#: The wrapper entry script beside the original one.
WRAPPER = "score_v2.py"

_WRAPPER_TEXT = '''"""v2 entry script written by releasetest migrate.

v2 mounts the folder model under its name, AZUREML_MODEL_DIR/{folder}/..., where v1 named the model
folder itself: point AZUREML_MODEL_DIR there and serve the v1 entry script unchanged.
"""

import os

os.environ["AZUREML_MODEL_DIR"] = os.path.join(os.environ["AZUREML_MODEL_DIR"], "{folder}")

from {module} import init, run  # noqa: E402,F401
'''


def migrate(release: Release, out: Path) -> list[Path]:
    """Write the v2 release of the v1 ``release`` into ``out`` (which must be empty or absent);
    return the files written, ``release.toml`` last."""
    if release.v2 is not None:
        raise ConfigError(release.manifest, "stages", "this release is already a v2 release",
                          "gate it as it is; migrate takes a v1 release (inference_config, deployment_config)")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(out, None, "the output folder is not empty", "name a new folder with --out")
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    written += _model(release, out / MODEL_FOLDER)
    written += _code(release, out / "src")
    conda = release.inference.conda_file
    env: dict[str, Any] = {"image": release.inference.raw.get("baseImage")
                           or "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest"}
    if conda is not None:
        dest = out / "environment" / conda.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(conda, dest)
        written.append(dest)
        env["conda_file"] = f"environment/{conda.name}"
    files: dict[str, tuple[str, str]] = {}
    for name, stage in release.stages.items():
        plan = plan_for(release, stage, "promote")
        endpoint = {k: v for k, v in plan.endpoint.items() if k not in ("tags", "description")}
        endpoint["name"] = f"{release.name}-{name}"
        deployment = {k: v for k, v in plan.deployment.items()
                      if k not in ("model", "code_configuration", "environment", "name", "endpoint_name")}
        deployment = {"$schema": deployment.pop("$schema"), "name": "blue", "endpoint_name": endpoint["name"],
                      "model": {"path": f"{MODEL_FOLDER}/"},
                      "code_configuration": {"code": "src/", "scoring_script": WRAPPER},
                      "environment": env, **deployment}
        for kind, doc in (("endpoint", endpoint), ("deployment", deployment)):
            path = out / f"{name}-{kind}.yml"
            path.write_text(f"# written by releasetest migrate from {stage.deployment.path.name}\n"
                            + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False), encoding="utf-8")
            written.append(path)
        files[name] = (f"{name}-endpoint.yml", f"{name}-deployment.yml")
    written += _data(release, out)
    manifest = out / "release.toml"
    manifest.write_text(_manifest(release.manifest.read_text(encoding="utf-8"), files), encoding="utf-8")
    return [*written, manifest]


def _model(release: Release, folder: Path) -> list[Path]:
    """One folder model: a single artifact's files at its root (as v1 mounted one model), several in
    the v1 layout ``<name>/<version>/<file>``."""
    written = []
    single = len(release.artifacts) == 1
    for art in release.artifacts:
        for f in art.files:
            dest = folder / f.path.name if single else folder / art.name / str(art.version) / f.path.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f.path, dest)
            written.append(dest)
    return written


def _code(release: Release, src: Path) -> list[Path]:
    """The source directory (or the entry script alone) and the wrapper entry script."""
    inference = release.inference
    entry = inference.entry_script
    source = inference.raw.get("sourceDirectory")
    if source:
        root = (inference.path.parent / source).resolve()
        shutil.copytree(root, src, ignore=shutil.ignore_patterns("__pycache__"))
        rel = entry.relative_to(root)
    else:
        src.mkdir(parents=True)
        shutil.copyfile(entry, src / entry.name)
        rel = Path(entry.name)
    if rel.parent != Path("."):
        raise ConfigError(inference.path, "entryScript", "the entry script is not at the top of sourceDirectory",
                          "migrate by hand: the wrapper imports it as a top-level module")
    wrapper = src / WRAPPER
    wrapper.write_text(_WRAPPER_TEXT.format(folder=MODEL_FOLDER, module=rel.stem), encoding="utf-8")
    return sorted(p for p in src.rglob("*") if p.is_file())


def _data(release: Release, out: Path) -> list[Path]:
    """The holdout and expected predictions, at the same paths relative to the manifest."""
    data = release.data
    if data is None:
        return []
    written = []
    for path in (data.holdout, data.expected_predictions):
        if path is None:
            continue
        rel = Path(os.path.relpath(path, release.root))
        if rel.parts and rel.parts[0] == "..":
            raise ConfigError(release.manifest, "data", f"{path} is outside the release folder",
                              "move it into the release folder before migrating")
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        written.append(dest)
    return written


_TABLE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def _manifest(text: str, files: dict[str, tuple[str, str]]) -> str:
    """The v1 manifest with its v1 keys replaced: ``inference_config`` and ``[[artifacts]]``
    dropped, each stage's ``deployment_config`` becoming ``endpoint`` and ``deployment``. The rest
    (comments, [data], suite tables) is kept as written."""
    out: list[str] = []
    table = ""
    for line in text.splitlines():
        header = _TABLE.match(line)
        if header:
            table = "[[artifacts]]" if line.strip().startswith("[[artifacts]]") else header.group(1)
            if table == "[[artifacts]]":
                continue
        if table == "[[artifacts]]" and line.strip() and not line.lstrip().startswith("#"):
            continue
        key = line.split("=", 1)[0].strip() if "=" in line and not line.lstrip().startswith("#") else ""
        if table == "release" and key == "inference_config":
            continue
        if table.startswith("stages.") and key == "deployment_config":
            endpoint, deployment = files[table.removeprefix("stages.").strip('"')]
            out += [f'endpoint = "{endpoint}"', f'deployment = "{deployment}"']
            continue
        out.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).rstrip() + "\n"
