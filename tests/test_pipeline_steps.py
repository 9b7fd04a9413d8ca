"""The CI templates' own ``run:``/``script:`` steps, executed in order with each trigger's environment.

A small step runner reads ci/github/release-gate.yml and ci/azure/azure-pipelines.yml, evaluates
the expressions the steps depend on (``${{ ... }}`` paths, ``$(...)`` macros, the production job's
``if:``) for a trigger, and runs every shell step with bash in the example project: trigger step,
DEV TEST gate (signed with Ed25519), verdict, approval, workspace config and ``promote --target
azureml`` into the loopback Azure ML stand-in (real azure-ai-ml client, real azmlinfsrv behind it).
A wrong command fails the step and the test. What the runner does not execute, and why:
``uses:``/``task:`` steps other than AzureCLI's inline script (checkout, setup-python, artifact
upload/download, azure/login: the jobs share one folder and the stand-in's credential), the
Install steps (the test venv has the editable install; their command is asserted), the release
history branch's restore and save steps (they need a git remote: ``tests/test_ci_templates.py``
runs them against a local bare repository; here the history stays in ``releasetest-out/``), and the load
stage (Locust master and ``releasetest load-worker`` jobs: distributed load is tested with its
own code). The gate is narrowed to the smoke suite to keep CI short: ``PYTEST_ADDOPTS`` passes the
suite's file, ``-c ../tox.ini`` (the project's own configuration, which pytest would otherwise look for
above that file) and ``--release-require smoke`` (no ``-k``/``-m``, which would make the verdict partial
and promotion refuse it). The two templates' gate steps are the same command, so the full chain
runs that gate once for both. A copy of each template with one wrong command must fail the runner.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import releasetest.suites
import yaml

from releasetest.verdict.history import Store, read_verdict

from .conftest import ReleaseProject
from .test_azureml_promote import arm  # noqa: F401  (the routing stand-in fixture)

pytest.importorskip("azure.ai.ml", reason="the azureml extra is not installed")

CI = Path(__file__).resolve().parent.parent / "ci"
BIN = str(Path(sys.executable).parent)
SMOKE = Path(releasetest.suites.__path__[0]) / "suite_smoke.py"
FAST = f"-c ../tox.ini --release-require smoke -p no:cacheprovider {SMOKE}"
GITHUB = CI / "github" / "release-gate.yml"
AZURE = CI / "azure" / "azure-pipelines.yml"
#: The CI's floors (a variable of the CI's, not the release's): one the example clears.
POLICY = "[acceptance]\nparity = 0.99\n"
INSTALL = re.compile(r'python -m pip install -e (\.|"\.\[azureml\]")')
SKIPPED_JOBS = {"production-load", "load-worker", "ProductionLoad"}
HISTORY_STEPS = ("Restore the release history", "Save the release history")


def _bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def _base_env(tmp: Path, arm_env: dict[str, str], keys: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELEASETEST_", "PYTEST_", "GITHUB_"))}
    env.update(arm_env)
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    env["PYTEST_ADDOPTS"] = FAST
    env["PYTEST_XDIST_AUTO_NUM_WORKERS"] = "1"
    # A runner's own temp root: `-n auto` makes pytest number a basetemp there, and at the end it
    # deletes the older ones; in the shared /tmp those are whole earlier test runs (24 s of CPU here).
    temproot = tmp / "pytest-temproot"
    temproot.mkdir(exist_ok=True)
    env["PYTEST_DEBUG_TEMPROOT"] = str(temproot)
    env.update(keys)
    return env


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    """An Ed25519 pair as the CI secret and variable would hold it."""
    from releasetest.verdict.signing import keygen

    pem = tmp_path / "signing.pem"
    keygen(pem)
    return {"SIGNING": pem.read_text(), "VERIFY": Path(f"{pem}.pub").read_text()}


# --- GitHub Actions ---------------------------------------------------------------------------

def _gh_expr(expr: str, ctx: dict[str, Any]) -> Any:
    """GitHub's expression subset the template uses: context paths, literals, ==, !=, &&, ||, ()."""
    def value(path: str) -> Any:
        node: Any = ctx
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    paths = re.sub(r"\b(github|inputs|secrets|vars|env)(\.[A-Za-z_][\w-]*)+", lambda m: repr(value(m.group(0))), expr)
    return eval(paths.replace("||", " or ").replace("&&", " and "), {"__builtins__": {}}, {})  # noqa: S307


def _gh_eval(text: str, ctx: dict[str, Any]) -> str:
    def one(expr: str) -> Any:
        return _gh_expr(expr, ctx)

    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: "" if one(m.group(1)) in (None, False) else str(one(m.group(1))),
                  text)


def _gh_ctx(event: str, ref: str, action: str = "", payload: dict[str, str] | None = None,
            inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"github": {"event_name": event, "ref": ref, "event": {"action": action, "client_payload": payload or {},
                                                                  "schedule": "17 3 * * *" if event == "schedule"
                                                                  else None},
                       "server_url": "https://github.com", "repository": "acme/port-weather", "run_id": "42"},
            "inputs": inputs or {}}


def _run_github(ctx: dict[str, Any], project: Path, base: dict[str, str], jobs: set[str],
                template: Path = GITHUB) -> dict[str, list[str]]:
    doc = yaml.safe_load(template.read_text())
    ctx["env"] = {}
    env = dict(base)
    env.update({k: _gh_eval(str(v), ctx) for k, v in doc["env"].items()})
    env.update(GITHUB_EVENT_NAME=ctx["github"]["event_name"], GITHUB_REF=ctx["github"]["ref"],
               GITHUB_REF_NAME=ctx["github"]["ref"].rsplit("/", 1)[-1], GITHUB_SHA="0" * 40,
               RUNNER_TEMP=str(project.parent / "runner-temp"))
    Path(env["RUNNER_TEMP"]).mkdir(exist_ok=True)
    ran: dict[str, list[str]] = {}
    for name, job in doc["jobs"].items():
        if name in SKIPPED_JOBS or (name not in jobs):
            continue
        if "if" in job and not _gh_expr(job["if"], ctx):
            continue
        job_env = dict(env)
        job_env.update({k: _gh_eval(str(v), ctx) for k, v in (job.get("env") or {}).items()})
        github_env = project.parent / f"github-env-{name}"
        github_env.write_text("")
        job_env["GITHUB_ENV"] = str(github_env)
        ran[name] = []
        for step in job["steps"]:
            if "run" not in step or str(step.get("name", "")).startswith(HISTORY_STEPS):
                continue
            if step.get("name") == "Install":
                assert INSTALL.fullmatch(step["run"]), step
                continue
            step_env = {**job_env, **{k: _gh_eval(str(v), ctx) for k, v in (step.get("env") or {}).items()}}
            done = _bash(step["run"], step_env, project)
            assert done.returncode == 0, f"{name}: {step.get('name')}: {step['run']}\n{done.stdout}\n{done.stderr}"
            ran[name].append(done.stdout)
            for line in github_env.read_text().splitlines():
                key, _, val = line.partition("=")
                job_env[key] = val
    return ran


GITHUB_TRIGGERS = {
    "git-develop": (_gh_ctx("push", "refs/heads/develop"), {"kind": "git", "branch": "develop"}, False),
    "artifact": (_gh_ctx("repository_dispatch", "refs/heads/main", "model-registered",
                         {"model": "support-vector-classifier", "version": "1"}),
                 {"kind": "artifact", "model": "support-vector-classifier", "version": "1"}, True),
    "image": (_gh_ctx("repository_dispatch", "refs/heads/main", "image-pushed",
                      {"image": "mlreleases.azurecr.io/port-weather-scoring:7"}),
              {"kind": "image", "image": "mlreleases.azurecr.io/port-weather-scoring:7"}, True),
    "schedule": (_gh_ctx("schedule", "refs/heads/main"), {"kind": "schedule", "cron": "17 3 * * *"}, False),
    "api": (_gh_ctx("workflow_dispatch", "refs/heads/main", inputs={"artifact": "support-vector-classifier=1",
                                                                      "promote": False}),
            {"kind": "api", "artifact": "support-vector-classifier=1"}, False),
}


@pytest.mark.parametrize("trigger", sorted(GITHUB_TRIGGERS))
def test_github_trigger_step_carries_the_payload(trigger: str, release_project: ReleaseProject,
                                                 tmp_path: Path) -> None:
    ctx, expected, production = GITHUB_TRIGGERS[trigger]
    ctx["secrets"], ctx["vars"] = {}, {}
    doc = yaml.safe_load((CI / "github" / "release-gate.yml").read_text())
    assert bool(_gh_expr(doc["jobs"]["production"]["if"], {**ctx, "env": {}})) is production
    step = next(s for s in doc["jobs"]["devtest-gate"]["steps"] if "releasetest trigger" in s.get("run", ""))
    env = _base_env(tmp_path, {}, {})
    env.update({k: _gh_eval(str(v), {**ctx, "env": {}}) for k, v in doc["env"].items()})
    env.update(GITHUB_EVENT_NAME=ctx["github"]["event_name"], GITHUB_REF_NAME=ctx["github"]["ref"].rsplit("/", 1)[-1],
               GITHUB_SHA="a" * 40, GITHUB_ENV=str(tmp_path / "github-env"))
    done = _bash(step["run"], env, release_project.release)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split("=", 1) for line in (tmp_path / "github-env").read_text().splitlines())
    fields = dict(p.split("=", 1) for p in lines["RELEASETEST_TRIGGER"].split(","))
    assert expected.items() <= fields.items()
    assert fields["run_url"] == "https://github.com/acme/port-weather/actions/runs/42"
    if trigger == "artifact":
        assert lines["RELEASETEST_ARTIFACT"] == "support-vector-classifier=1"


# --- Azure Pipelines --------------------------------------------------------------------------

def _az_expand(text: str, params: dict[str, str], macros: dict[str, str]) -> str:
    text = re.sub(r"\$\{\{\s*parameters\.(\w+)\s*\}\}", lambda m: params[m.group(1)], text)
    return re.sub(r"\$\(([\w.]+)\)", lambda m: macros.get(m.group(1), m.group(0)), text)


def _az_steps(doc: dict[str, Any], stage: str) -> list[dict[str, Any]]:
    st = next(s for s in doc["stages"] if s["stage"] == stage)
    job = st["jobs"][0]
    return job["steps"] if "steps" in job else job["strategy"]["runOnce"]["deploy"]["steps"]


def _az_script(step: dict[str, Any]) -> str | None:
    if "script" in step:
        return str(step["script"])
    if step.get("task") == "AzureCLI@2":
        return str(step["inputs"]["inlineScript"])
    return None


def _run_azure(project: Path, base: dict[str, str], params: dict[str, str], macros: dict[str, str],
               reason: str, branch: str, stages: list[str], template: Path = AZURE,
               already_ran: frozenset[str] = frozenset()) -> dict[str, str]:
    """Run the stages' script steps; a script in ``already_ran`` (byte for byte the same command,
    run by the other template in this project) is not run again."""
    doc = yaml.safe_load(template.read_text())
    defaults = {p["name"]: p.get("default", "") for p in doc["parameters"]}
    params = {**defaults, **params}
    env = dict(base)
    env.update(BUILD_REASON=reason, BUILD_SOURCEBRANCH=f"refs/heads/{branch}", BUILD_SOURCEBRANCHNAME=branch,
               BUILD_SOURCEVERSION="b" * 40)
    macros = {**macros, "RUN_URL": "https://dev.azure.com/acme/port-weather/_build/results?buildId=7",
              "Agent.TempDirectory": str(project.parent / "agent-temp"), "RELEASETEST_POLICY_TOML": POLICY}
    Path(macros["Agent.TempDirectory"]).mkdir(exist_ok=True)
    for stage in stages:
        for step in _az_steps(doc, stage):
            script = _az_script(step)
            if script is None or str(step.get("displayName", "")).startswith(HISTORY_STEPS):
                continue
            if step.get("displayName") == "Install":
                assert INSTALL.fullmatch(script), step
                continue
            if _az_expand(script, params, macros) in already_ran:
                continue
            step_env = dict(env)
            step_env.update({k: _az_expand(str(v), params, macros) for k, v in (step.get("env") or {}).items()})
            done = _bash(_az_expand(script, params, macros), step_env, project)
            assert done.returncode == 0, f"{stage}: {step.get('displayName')}\n{done.stdout}\n{done.stderr}"
            for name, value in re.findall(r"##vso\[task\.setvariable variable=(\w+)\](.*)", done.stdout):
                env[name] = value
    return env


AZURE_TRIGGERS = {
    "git": ("IndividualCI", {}, {"kind": "git", "branch": "main"}),
    "artifact": ("Manual", {"model": "support-vector-classifier", "version": "1"},
                 {"kind": "artifact", "model": "support-vector-classifier", "version": "1"}),
    "image": ("ResourceTrigger", {}, {"kind": "image", "image": "port-weather-scoring:7"}),
    "schedule": ("Schedule", {}, {"kind": "schedule"}),
    "api": ("Manual", {"artifact": "support-vector-classifier=1"},
            {"kind": "api", "artifact": "support-vector-classifier=1"}),
}


@pytest.mark.parametrize("trigger", sorted(AZURE_TRIGGERS))
def test_azure_trigger_step_carries_the_payload(trigger: str, release_project: ReleaseProject,
                                                tmp_path: Path) -> None:
    reason, params, expected = AZURE_TRIGGERS[trigger]
    doc = yaml.safe_load((CI / "azure" / "azure-pipelines.yml").read_text())
    step = next(s for s in _az_steps(doc, "DevTest") if "trigger" in str(s.get("script")))
    defaults = {p["name"]: p.get("default", "") for p in doc["parameters"]}
    macros = {"resources.container.scoring_image.repository": "port-weather-scoring",
              "resources.container.scoring_image.tag": "7"}
    env = _base_env(tmp_path, {}, {})
    env.update(BUILD_REASON=reason, BUILD_SOURCEBRANCHNAME="main", BUILD_SOURCEVERSION="b" * 40)
    env.update({k: _az_expand(str(v), {**defaults, **params}, macros) for k, v in step["env"].items()})
    done = _bash(step["script"], env, release_project.release)
    assert done.returncode == 0, done.stderr
    values = dict(re.findall(r"##vso\[task\.setvariable variable=(\w+)\](.*)", done.stdout))
    fields = dict(p.split("=", 1) for p in values["RELEASETEST_TRIGGER"].split(","))
    assert expected.items() <= fields.items()
    if trigger == "artifact":
        assert values["RELEASETEST_ARTIFACT"] == "support-vector-classifier=1"


def test_azure_production_needs_the_approved_environment() -> None:
    doc = yaml.safe_load((CI / "azure" / "azure-pipelines.yml").read_text())
    production = next(s for s in doc["stages"] if s["stage"] == "Production")
    assert production["jobs"][0]["environment"] == "production"  # no parameter can name another one
    assert "parameters" not in str(production)


@pytest.mark.long
def test_both_pipelines_gate_approve_and_promote(release_project: ReleaseProject, tmp_path: Path,
                                                 arm: Any, keys: dict[str, str]) -> None:  # noqa: F811
    """One DEV TEST gate for both templates (their gate steps are the same command): GitHub's job
    runs it, Azure's DevTest stage runs its other steps on that verdict; then each template's
    approval and promotion: GitHub's shifts the stand-in's production endpoint blue/green to the
    release, Azure's finds it already serving and checks it answers."""
    from tests.azure_standin import WORKSPACE_CONFIG

    github_doc, azure_doc = yaml.safe_load(GITHUB.read_text()), yaml.safe_load(AZURE.read_text())
    gate = next(s["run"] for s in github_doc["jobs"]["devtest-gate"]["steps"] if "--release-stage" in s.get("run", ""))
    assert gate in {_az_script(s) for s in _az_steps(azure_doc, "DevTest")}, "the templates' gate steps differ"
    project = release_project.release
    out = project / "releasetest-out"
    ctx = _gh_ctx("push", "refs/heads/main")
    ctx["secrets"] = {"RELEASETEST_SIGNING_KEY": keys["SIGNING"], "AZURE_SUBSCRIPTION_ID": WORKSPACE_CONFIG[
        "subscription_id"]}
    ctx["vars"] = {"RELEASETEST_POLICY_TOML": POLICY,
                   "RELEASETEST_VERIFY_KEY": keys["VERIFY"], "AZUREML_RESOURCE_GROUP": WORKSPACE_CONFIG[
        "resource_group"], "AZUREML_WORKSPACE": WORKSPACE_CONFIG["workspace_name"]}
    base = _base_env(tmp_path, arm.client_env(tmp_path / "az"), {})
    assert set(_run_github(ctx, project, base, {"devtest-gate"})) == {"devtest-gate"}
    verdict = read_verdict(out / "verdict.json")
    assert verdict["decision"] == "PROMOTE" and verdict["signature"] and not verdict["partial"]
    assert verdict["trigger"]["kind"] == "git" and verdict["trigger"]["branch"] == "main"
    assert verdict["policy"]["path"].endswith("runner-temp/releasetest-policy.toml"), "the template's policy applied"
    base.update(AZURE_SUBSCRIPTION_ID=WORKSPACE_CONFIG["subscription_id"],
                AZUREML_RESOURCE_GROUP=WORKSPACE_CONFIG["resource_group"],
                AZUREML_WORKSPACE=WORKSPACE_CONFIG["workspace_name"])
    macros = {"RELEASETEST_SIGNING_KEY": keys["SIGNING"], "RELEASETEST_VERIFY_KEY": keys["VERIFY"]}
    azure_env = _run_azure(project, base, {}, macros, "IndividualCI", "main", ["DevTest"],
                           already_ran=frozenset({gate}))
    assert "kind=git" in azure_env["RELEASETEST_TRIGGER"] and "branch=main" in azure_env["RELEASETEST_TRIGGER"]

    assert set(_run_github(ctx, project, base, {"production"})) == {"production"}
    store = Store(out / "history")
    (approval,) = store.approvals(verdict["digest"])
    assert approval["by"] == "approved through environment production"
    assert approval["note"] == "https://github.com/acme/port-weather/actions/runs/42"
    (promotion,) = store.promotions()
    deployment = f"r-{verdict['release']['id'].split(':')[1][:12]}"
    assert promotion["target"] == "azureml" and promotion["endpoint"]["endpoint"] == "port-weather-production"
    assert promotion["endpoint"]["traffic"] == {deployment: 100}

    _run_azure(project, base, {}, macros, "IndividualCI", "main", ["Production"])
    (approval,) = store.approvals(verdict["digest"])  # the same environment approves once
    _, again = store.promotions()
    assert again["target"] == "azureml" and again["endpoint"]["endpoint"] == "port-weather-production"
    assert again["endpoint"]["traffic_before"] == {deployment: 100} == again["endpoint"]["traffic"]
    assert "buildId=7" in again["by"]


@pytest.mark.parametrize(("template", "wrong", "right"), [
    (GITHUB, "--release-stage dev-test -n auto --junitxml", "--release-stage devtest -n auto --junitxml"),
    (AZURE, "releasetest trigger --ci github", "releasetest trigger --ci azure"),
])
def test_a_wrong_step_command_fails_the_runner(template: Path, wrong: str, right: str,
                                               release_project: ReleaseProject, tmp_path: Path) -> None:
    """The runner is not vacuous: the same template with one command wrong stops at that step."""
    text = template.read_text()
    assert text.count(right) == 1
    mutated = tmp_path / template.name
    mutated.write_text(text.replace(right, wrong))
    base = _base_env(tmp_path, {}, {})
    with pytest.raises(AssertionError) as failed:
        if template == GITHUB:
            ctx = _gh_ctx("push", "refs/heads/develop")
            ctx["secrets"], ctx["vars"] = {}, {}
            _run_github(ctx, release_project.release, base, {"devtest-gate"}, template=mutated)
        else:
            _run_azure(release_project.release, base, {}, {}, "IndividualCI", "develop", ["DevTest"], template=mutated)
    assert wrong in str(failed.value)
