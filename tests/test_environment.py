"""Environment fidelity: the serving interpreter against the release's conda file."""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from releasetest.errors import ConfigError
from releasetest.progress import Event
from releasetest.release.environment import (
    CondaEnv,
    artifact_needs,
    build_isolated,
    cache_entry,
    compare,
    parse_conda_env,
    pickle_modules,
    pinned_names,
    probe,
    unpinned_needs,
)

from .conftest import EXAMPLE, ReleaseProject
from .recorded_target import RecordedTarget


@functools.cache
def index_unreachable() -> str | None:
    """Why pip cannot find the inference server the isolated build installs, or None (asked once, with
    pip's own configuration: index, proxies, find-links)."""
    try:
        done = subprocess.run([sys.executable, "-m", "pip", "index", "versions", "azureml-inference-server-http",
                               "--retries", "0", "--timeout", "10", "--disable-pip-version-check"],
                              capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "the package index did not answer within 60 s"
    if done.returncode != 0:
        return "the package index cannot be reached: " + (done.stderr.strip().splitlines() or ["?"])[-1]
    return None


@pytest.fixture
def package_index() -> None:
    """Skip, with the reason, a test that builds an environment from the package index when it is offline."""
    reason = index_unreachable()
    if reason:
        pytest.skip(reason)

SEED_ENV = """\
name: project_environment
dependencies:
  - python=3.6.2
  - scikit-learn=0.20.3
  - pip:
    - azureml-defaults
    - numpy==1.19.5
    - onnxruntime>=1.0
"""


def test_compare_reports_each_unsatisfied_pin_and_nothing_unpinned(tmp_path: Path) -> None:
    """azureml-defaults is listed without a version: it pins nothing, so it is not compared (it
    is not installed here, and was once reported as "pinned, not installed")."""
    path = tmp_path / "myenv.yml"
    path.write_text(SEED_ENV)
    env = parse_conda_env(path)
    assert env.python == "=3.6.2"
    found = compare(env, "3.11.7", {"scikit-learn": "1.9.1", "numpy": "2.4.6", "onnxruntime": "1.32.0"})
    assert [str(m) for m in found] == [
        "python: python=3.6.2 pinned, 3.11.7 in the serving environment",
        "numpy: numpy==1.19.5 pinned, 2.4.6 in the serving environment",
        "scikit-learn: scikit-learn=0.20.3 pinned, 1.9.1 in the serving environment",
    ]
    env311 = CondaEnv(path=path, python="=3.11", pip=("numpy==2.4.6",), conda=())
    assert compare(env311, "3.11.7", {"numpy": "2.4.6"}) == []


def test_what_the_artifacts_need_at_load_time(tmp_path: Path) -> None:
    """Read from the files, never unpickled: the example's joblib scaler (scikit-learn, the
    version it was saved with, numpy, joblib) and its ONNX model (the runtime, the opsets)."""
    models = EXAMPLE / "models"
    needs = artifact_needs([models / "model-scaler.pkl", models / "support-vector-classifier.onnx"])
    assert [(n.package, n.why) for n in needs] == [
        ("scikit-learn", "a joblib file that imports sklearn, saved with scikit-learn 1.9.1"),
        ("numpy", "a joblib file that imports numpy"),
        ("joblib", "a joblib file that imports joblib"),
        ("onnxruntime", "an ONNX model (opset ai.onnx 9, ai.onnx.ml 1)")]
    import pickle
    from fractions import Fraction

    import joblib
    import numpy as np

    old = tmp_path / "old.pkl"
    old.write_bytes(pickle.dumps({"w": np.arange(3), "f": Fraction(1, 3)}, protocol=2))
    assert pickle_modules(old) == (("numpy",), None), "protocol 2 names classes with GLOBAL; fractions is stdlib"
    packed = tmp_path / "packed.joblib"
    joblib.dump(joblib.load(EXAMPLE / "models" / "model-scaler.pkl"), packed, compress=3)
    assert pickle_modules(packed)[0] == ("sklearn", "numpy", "joblib")


def test_unpinned_needs_name_the_files_and_the_pin(tmp_path: Path) -> None:
    path = tmp_path / "myenv.yml"
    path.write_text("dependencies:\n  - python=3.11\n  - pip:\n    - scikit-learn\n    - numpy==2.4.6\n"
                    "    - onnxruntime>=1.17\n")
    needs = artifact_needs([EXAMPLE / "models" / "model-scaler.pkl"])
    assert unpinned_needs(parse_conda_env(path), needs, EXAMPLE) == [
        "scikit-learn is not pinned in myenv.yml, but models/model-scaler.pkl is a joblib file that imports sklearn, "
        "saved with scikit-learn 1.9.1: a different version at load time can fail or change predictions (fix: pin it "
        "in the pip section, e.g. scikit-learn==1.9.1)",
        f"joblib is not pinned in myenv.yml, but models/model-scaler.pkl is a joblib file that imports joblib: a "
        f"different version at load time can fail or change predictions (fix: pin it in the pip section, e.g. "
        f"joblib=={__import__('joblib').__version__})"]


def test_unpinned_artifact_needs_warn_and_block_in_strict(example_project: ReleaseProject,
                                                          recorded: RecordedTarget) -> None:
    release_project = example_project
    release_project.edit("myenv.yml", "      - joblib==1.6.0\n", "")
    release_project.edit("myenv.yml", "scikit-learn==1.9.1", "scikit-learn")
    args = ("--release-stage", "devtest", *recorded.args, "--release-require", "smoke", "-m", "smoke")
    result = release_project.run_inprocess(*args)
    verdict = release_project.verdict()
    assert verdict["decision"] == "PROMOTE"
    assert [w.split(" is not pinned")[0] for w in verdict["warnings"]] == ["scikit-learn", "joblib"]
    result.stdout.fnmatch_lines(["warning: scikit-learn is not pinned in myenv.yml, but models/model-scaler.pkl is a "
                                 "joblib file that imports sklearn, saved with scikit-learn 1.9.1:*"])

    release_project.run_inprocess(*args, "--release-env", "strict")
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK"
    assert "the release's artifacts need packages it does not pin: scikit-learn is not pinned" in verdict["reasons"][0]
    assert "joblib is not pinned" in verdict["reasons"][0]


def test_probe_asks_only_the_pinned_names_in_this_or_another_interpreter(tmp_path: Path) -> None:
    path = tmp_path / "env.yml"
    path.write_text("dependencies:\n  - python=3.11\n  - numpy=2.4\n  - pip:\n    - pytest>=8\n"
                    "    - Not_Installed.Anywhere==1.0\n")
    names = pinned_names(parse_conda_env(path))
    assert names == ("pytest", "Not_Installed.Anywhere", "numpy")
    here = probe(sys.executable, names)
    # Another spelling of this interpreter's path: the probe runs in a child interpreter.
    child = probe(str(Path(sys.executable).parent / "." / Path(sys.executable).name), names)
    assert here == child
    version, found = here
    assert version == ".".join(map(str, sys.version_info[:3]))
    assert set(found) == {"pytest", "numpy"} and found["pytest"] == pytest.__version__


def test_drift_is_a_warning_by_default_and_blocks_in_strict(release_project: ReleaseProject) -> None:
    release_project.edit("myenv.yml", "scikit-learn==", "scikit-learn==0.20.3\n      - unused-placeholder==")
    result = release_project.run_inprocess("--release-stage", "devtest", "--release-require", "smoke", "-m", "smoke")
    assert result.ret == 0
    verdict = release_project.verdict()
    assert verdict["decision"] == "PROMOTE"
    assert "scikit-learn: scikit-learn==0.20.3 pinned" in verdict["warnings"][0]
    result.stdout.fnmatch_lines(["warning: environment differs from myenv.yml: scikit-learn: scikit-learn==0.20.3*"])

    result = release_project.run_inprocess("--release-stage", "devtest", "--release-require", "smoke", "-m", "smoke",
                                           "--release-env", "strict")
    assert result.ret != 0
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK"
    assert "the serving environment differs from the conda file: scikit-learn" in verdict["reasons"][0]
    assert verdict["deploy"]["left_behind"] == {}, "strict mode must stop before starting a server"


def test_isolated_with_an_unavailable_python_names_the_pin(release_project: ReleaseProject) -> None:
    release_project.edit("myenv.yml", "python=3.11", "python=3.6.2")
    result = release_project.run_inprocess("--release-stage", "devtest", "--release-env", "isolated")
    assert result.ret != 0
    reason = release_project.verdict()["reasons"][0]
    assert "dependencies: python=3.6.2: no python3.6 interpreter on this machine" in reason


@pytest.mark.long
@pytest.mark.usefixtures("package_index")
def test_isolated_builds_the_pinned_env_and_serves_from_it(release_project: ReleaseProject,
                                                           tmp_path_factory: pytest.TempPathFactory,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The endpoint runs in a fresh venv with exactly the conda file's pip pins (needs PyPI). Built
    with uv, which the test extra installs (pip takes five times as long; its commands are the same
    two steps, and its failure path is tested below)."""
    cache = tmp_path_factory.mktemp("envcache")
    monkeypatch.setenv("RELEASETEST_CACHE_DIR", str(cache))
    result = release_project.run_inprocess("--release-stage", "devtest", "--release-env", "isolated",
                                           "--release-require", "smoke", "-m", "smoke")
    installer = "uv" if shutil.which("uv") else "pip"
    result.stdout.fnmatch_lines([f"*building the isolated environment from myenv.yml (6 pip pins, {installer})*"])
    verdict = release_project.verdict()
    assert verdict["decision"] == "PROMOTE", verdict["reasons"]
    env = verdict["environment"]["conda_check"]
    assert env["mode"] == "isolated" and env["mismatches"] == []
    assert env["interpreter"].startswith(str(cache)) and env["interpreter"] != sys.executable
    assert result.ret == 0


@pytest.mark.usefixtures("package_index")
@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_isolated_unsatisfiable_pin_says_which(installer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if installer == "uv" and not shutil.which("uv"):
        pytest.skip("uv is not installed (the test extra installs it)")
    if installer == "pip":  # uv is used when it is on PATH
        monkeypatch.setenv("PATH", os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep)
                                                   if not (Path(d) / "uv").exists()))
    path = tmp_path / "myenv.yml"
    path.write_text("dependencies:\n  - python=3.11\n  - pip:\n    - azureml-inference-server-http==0.0.0.0\n")

    with pytest.raises(ConfigError) as info:
        build_isolated(parse_conda_env(path), tmp_path / "cache")
    assert "the pinned environment cannot be built" in str(info.value)
    assert "azureml-inference-server-http==0.0.0.0" in str(info.value)


def test_a_second_build_of_one_environment_waits_for_the_first(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Two gates on one machine building the same cached environment: the second waits on the
    entry's lock, saying so, and then uses what the first built; it never deletes the folder the
    first is installing into. (No installer can run here: this uv refuses, so a build would fail.)"""
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "uv").write_text("#!/bin/sh\necho 'error: this test allows no build' >&2\nexit 1\n")
    (tools / "uv").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    env = parse_conda_env(EXAMPLE / "myenv.yml")
    target = cache_entry(env, tmp_path / "envs", sys.executable)
    target.mkdir(parents=True)
    (target / "half-built").write_text("the first gate is installing\n")
    waiting = threading.Event()
    said: list[str] = []
    outcome: list[object] = []

    def progress(event: Event) -> None:
        said.append(event.text)
        if event.text.startswith("waiting for another gate's build"):
            waiting.set()

    def second_gate() -> None:
        try:
            outcome.append(build_isolated(env, tmp_path / "envs", progress))
        except Exception as exc:  # noqa: BLE001 - the assertion below shows it
            outcome.append(exc)

    first = os.open(f"{target}.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(first, fcntl.LOCK_EX)
    thread = threading.Thread(target=second_gate)
    try:
        thread.start()
        assert waiting.wait(timeout=30), f"the second build did not wait: {said} {outcome}"
        assert (target / "half-built").is_file(), "the second build deleted the first one's folder"
        (target / ".complete").write_text("ok\n")
    finally:
        os.close(first)
        thread.join(timeout=30)
    assert outcome == [str(target / "bin" / "python")], said


def test_a_cache_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"myenv.yml: dependencies.pip: the isolated-environment cache \S+/file/envs "
                       r"cannot be used: Not a directory \(fix: set RELEASETEST_CACHE_DIR to a folder"):
        build_isolated(parse_conda_env(EXAMPLE / "myenv.yml"), tmp_path / "file" / "envs")
