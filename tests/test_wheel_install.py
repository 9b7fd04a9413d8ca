"""The README's install route: a wheel built from this repository, installed in a fresh venv, gates a
release that lives outside the repository, with the suites that came in the wheel.

Offline and fast: the wheel is built without build isolation (this venv's setuptools), and the fresh
venv sees this venv's packages (a ``.pth`` line; ``--system-site-packages`` alone gives only the base
interpreter's) so only releasetest itself is installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import INI, child_env, copy_example, default_sigint, lighten

REPO = Path(__file__).resolve().parent.parent
#: What a wheel is built from (a copy, so the build leaves nothing in the worktree).
SOURCES = ("pyproject.toml", "README.md", "releasetest", "suites")


def run(*cmd: str | Path, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=child_env(), capture_output=True, text=True,
                          timeout=timeout, preexec_fn=default_sigint)


@pytest.mark.long
def test_a_wheel_in_a_fresh_venv_gates_a_release_outside_the_repository(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist",
                ".", cwd=source)
    assert built.returncode == 0, built.stderr[-3000:]
    [wheel] = (tmp_path / "dist").glob("releasetest-*.whl")

    venv = tmp_path / "venv"
    made = run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path)
                .stdout.strip())
    # This venv's packages after the new venv's own: a plain path line, so this venv's .pth files (the
    # editable install's finder, which would shadow the wheel) are not run.
    (site / "outer-venv.pth").write_text(sysconfig.get_path("purelib") + "\n")
    installed = run(python, "-m", "pip", "install", "--no-deps", "--no-index", wheel, cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr[-3000:]
    where = run(python, "-c", "import releasetest.run as r; print(r.__file__); print(r.suites_dir())", cwd=tmp_path)
    module, suites = (Path(line) for line in where.stdout.split())
    assert module.is_relative_to(site) and suites == site / "releasetest" / "suites", where.stdout

    project = tmp_path / "project"
    lighten(copy_example(project))  # served without scikit-learn: what is tested is where the gate came from
    (project / "pytest.ini").write_text(INI)
    gate = run(python, "-m", "pytest", "-p", "no:cacheprovider", "--release-stage", "devtest", cwd=project)
    verdict = json.loads((project / "releasetest-out" / "verdict.json").read_text())
    assert verdict["decision"] == "PROMOTE", gate.stdout[-3000:]
    assert gate.stdout.splitlines()[-1].startswith("releasetest: PROMOTE port-weather@")
    ids = [test for suite in verdict["suites"].values() for test in suite["tests"]]
    assert ids and all(Path(test.split("::")[0]).parent == suites for test in ids), ids

    liveness = next(test for test in ids if test.endswith("::test_liveness"))
    # pytest looks for its configuration above the paths it is given: a suite's id points into the venv.
    pasted = run(python, "-m", "pytest", "-p", "no:cacheprovider", "-c", "pytest.ini", "--release-stage", "devtest",
                 liveness, cwd=project)
    assert pasted.returncode == 1, pasted.stdout[-3000:]  # a partial run does not promote
    assert pasted.stdout.splitlines()[-2].startswith("=") and " 1 passed in " in pasted.stdout.splitlines()[-2]
    assert "configfile: pytest.ini" in pasted.stdout
