"""Keeping the release's code out of the process that decides and signs.

A release folder holds code its team wrote: besides the entry script, their own tests, conftest
files, an ini file, plugin modules. Whatever runs inside the gate's process can rewrite any test's
result before the verdict is sealed, so the gate (the process that decides) loads none of it:

- pytest's ini file, when it lies in the release folder, is ignored: the gate re-runs itself with
  an empty configuration (:func:`gate_rerun_command`);
- the gate loads no ``conftest.py`` at all, and collects only the built-in suites;
- the team's own tests run in a child pytest (:func:`team_command`) in the same sandbox as the
  local endpoint (:mod:`releasetest.endpoint.sandbox`): an allow-listed environment
  (:func:`team_env`), a PID namespace that ends with it, and a read-only view of what it must read
  (:func:`team_readable`) with only its work folder and a private ``/tmp`` writable; the gate adds
  what it reports (:func:`team_outcomes`): its failures BLOCK, and it cannot take a built-in test's
  result or finding away;
- the interpreter's start-up files (``.pth`` hooks, ``sitecustomize``, plugin entry points) and
  releasetest's own files are fingerprinted before the deploy (:func:`startup_fingerprint`);
  processes that start later (xdist workers, the team's pytest) would run a change, so any change
  BLOCKs (:func:`startup_changes`), whatever those processes report.

No pytest here: :mod:`releasetest.plugin` and :mod:`releasetest.wiring.team` move pytest's events in.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import site
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from releasetest.endpoint.sandbox import sandbox_env
from releasetest.release.manifest import Release
from releasetest.settings import OPTIONS, Settings

#: Set by the gate for the child pytest that runs the team's own tests: the hand-over file.
TEAM_INPUT_ENV = "RELEASETEST_TEAM_INPUT"
#: Set by the gate when it re-ran itself without the release folder's ini file: that file's path.
IGNORED_INI_ENV = "RELEASETEST_IGNORED_INI"
#: Set by the gate for its re-run without the release folder's ini: the release code its first process
#: had already loaded (one per line), which the re-run BLOCKs on.
PRELOADED_ENV = "RELEASETEST_PRELOADED"
#: The re-run's interpreter: pytest without the working directory on ``sys.path`` (``python -m``
#: would put it first), so a module in the release folder cannot shadow one the gate imports.
_PYTEST_WITHOUT_CWD = ("import sys\nif sys.path[:1] == ['']:\n    del sys.path[0]\n"
                       "import pytest\nsys.exit(pytest.main())")
#: The suite a failure of the team's pytest itself (no results, a crash) is counted under.
TEAM_SUITE = "own tests"

#: Names of variables that hold secrets or name their files: the gate's keys, what CI systems keep theirs in.
_SECRET = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|CONNECTION_STRING|SAS)", re.I)
#: What the team's pytest gets of the gate's environment besides the sandbox's allow-list: how Python
#: and pytest print and behave. Not ``PYTEST_ADDOPTS``/``PYTEST_PLUGINS``: those configure the gate's own pytest.
TEAM_PASSED_ENV = ("COLUMNS", "LINES", "TERM", "NO_COLOR", "FORCE_COLOR", "PY_COLORS", "PYTHONHASHSEED",
                   "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PYTHONIOENCODING", "PYTHONWARNINGS",
                   "PYTHONFAULTHANDLER", "CI")
#: Exit statuses of a team pytest that reported its own results: all passed, some failed, none collected.
_REPORTED = (0, 1, 5)


def inside(path: Path, folder: Path) -> bool:
    """True when ``path`` is ``folder`` or lies below it (both resolved)."""
    return path.resolve().is_relative_to(folder.resolve())


def release_ini(inipath: Path | None, manifest: Path) -> Path | None:
    """pytest's configuration file when it lies in the release folder (the manifest's folder), else None."""
    if inipath is None or not inside(inipath.parent, manifest.parent):
        return None
    return inipath


def gate_rerun_command(args: Iterable[str], empty_ini: Path, rootdir: Path) -> list[str]:
    """The same gate without the release folder's ini file: pytest reads ``empty_ini`` instead, and
    the rootdir stays where it was. The original arguments come first so these options win."""
    return [sys.executable, "-c", _PYTEST_WITHOUT_CWD, *args, "-c", str(empty_ini), f"--rootdir={rootdir}"]


def ini_plugins(addopts: Iterable[str]) -> list[str]:
    """The plugins an ini file's ``addopts`` imports with ``-p NAME`` (``-p no:NAME`` blocks one,
    and imports nothing)."""
    args = list(addopts)
    names = []
    for i, arg in enumerate(args):
        if arg == "-p" and i + 1 < len(args):
            names.append(args[i + 1])
        elif arg.startswith("-p") and len(arg) > 2:
            names.append(arg[2:].lstrip("="))
    return [n for n in names if not n.startswith("no:")]


def release_modules(modules: Mapping[str, Any], folder: Path) -> list[str]:
    """Modules in ``modules`` (``sys.modules``) loaded from ``folder`` or below: release code that
    ran in this process. String prefixes only: resolving every module's path costs tens of ms."""
    roots = tuple({os.path.abspath(folder) + os.sep, os.path.realpath(folder) + os.sep})
    found = []
    for name, module in list(modules.items()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and (file if os.path.isabs(file) else os.path.abspath(file)).startswith(roots):
            found.append(f"module {name} ({file})")
    return sorted(found)


def preloaded_reason(preloaded: Iterable[str]) -> str:
    """The BLOCK reason for release code that ran in the gate's own process before it could keep it out."""
    return ("release code ran in the gate's own process before the gate could keep it out (it saw this job's "
            "environment, the signing key included: treat the job's secrets as exposed): " + "; ".join(preloaded)
            + "; run the gate with -c naming an ini file outside the release folder, with the pytest command "
            "(not python -m pytest) from outside it")


def team_env(environ: Mapping[str, str], handover: Path, home: Path) -> dict[str, str]:
    """The team's pytest's environment, built like the server's (:func:`sandbox_env`: an allow-list,
    never the CI's secrets), plus what pytest needs: :data:`TEAM_PASSED_ENV`, the gate's own
    settings (``RELEASETEST_<OPTION>``, so it reads the release as the gate does) and the hand-over file."""
    settings = {opt.env for opt in OPTIONS}
    needs = {k: v for k, v in environ.items() if k in TEAM_PASSED_ENV or k in settings}
    return sandbox_env({**needs, TEAM_INPUT_ENV: str(handover)}, {}, home, environ)


def secret_files(environ: Mapping[str, str]) -> list[Path]:
    """Files that secret-named variables point at (``RELEASETEST_SIGNING_KEY_FILE``,
    ``GOOGLE_APPLICATION_CREDENTIALS``): hidden from the team's pytest where their folder is bound."""
    return sorted({Path(v).resolve() for k, v in environ.items()
                   if _SECRET.search(k) and v.startswith(("/", ".")) and Path(v).is_file()})


def _fixed_part(path: Path) -> Path:
    """A path up to its first glob character (a traffic glob's folder)."""
    parts: list[str] = []
    for part in path.parts:
        if any(c in part for c in "*?["):
            break
        parts.append(part)
    return Path(*parts) if parts else path


def release_files(release: Release | None, settings: Settings) -> list[Path | None]:
    """Every file or folder the team's pytest loads the release from, as the gate did."""
    found: list[Path | None] = [settings.config.parent, settings.policy, settings.traffic, settings.workspace_config,
                                settings.verdict.parent / "registry"]
    if release is None:
        return found
    inference = release.inference
    found += [release.root, inference.path, inference.conda_file, inference.entry_script.parent,
              *(f.path for a in release.artifacts for f in a.files),
              release.v2.code_dir if release.v2 is not None else None]
    if release.data is not None:
        found += [release.data.holdout, release.data.expected_predictions]
    if release.production is not None:
        found.append(release.root / release.production.traffic)
    return found


def team_readable(here: Path, config_files: Iterable[Path | None], paths: Iterable[str],
                  release_files: Iterable[Path | None]) -> list[Path]:
    """What the team's pytest reads besides the interpreter: where pytest runs, its rootdir and
    ini file, the team's test paths, and every file the release is loaded from (manifest folder,
    artifacts, holdout, policy, traffic); bound read-only in its sandbox."""
    found = [here, *(p for p in config_files if p is not None)]
    found += [here / p.split("::")[0] for p in paths]
    found += [_fixed_part(p) for p in release_files if p is not None]
    return sorted({p.resolve() for p in found})


def team_command(paths: Iterable[str], stage: str, manifest: Path, target: str, url: str | None,
                 selection: Iterable[str]) -> list[str]:
    """The child pytest that runs the team's own tests against the gate's endpoint. ``selection``
    carries the user's ``-k``/``-m`` and ``--capture``; xdist stays off (the tests share the one endpoint)."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", *paths,
           f"--release-stage={stage}", f"--release-config={manifest}", f"--release-target={target}"]
    if url:
        cmd.append(f"--release-url={url}")
    return [*cmd, *selection]


@dataclass(frozen=True)
class TeamReport:
    """One report phase of a team test, as the gate's recorder counts it."""

    suite: str
    nodeid: str
    when: str
    outcome: str
    message: str | None = None
    seconds: float | None = None


@dataclass
class TeamOutcome:
    """What the team's pytest left: its reports, its recorded findings, and problems with the run
    itself (each a failure of :data:`TEAM_SUITE`)."""

    reports: list[TeamReport] = field(default_factory=list)
    findings: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def write_team_output(path: Path, reports: list[TeamReport], findings: dict[str, Any]) -> None:
    """The team's pytest's side: what it ran and recorded, for the gate to read back."""
    data = {"reports": [r.__dict__ for r in reports], "findings": findings}
    path.write_text(json.dumps(data, default=str), encoding="utf-8")


def team_outcomes(path: Path, exit_status: int, stderr: str = "") -> TeamOutcome:
    """Read the team's pytest's output. The gate trusts it only to add failures: a missing or
    garbled file, or an exit status that says something failed while no failure was reported,
    is itself a failure (with pytest's last ``ERROR:`` line, e.g. a usage error, when it printed one)."""
    outcome = TeamOutcome()
    said = [line.strip() for line in stderr.splitlines() if line.strip().startswith("ERROR:")]
    why = f": {said[-1].removeprefix('ERROR:').strip()}" if said else ""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        outcome.reports = [TeamReport(**r) for r in data["reports"]]
        outcome.findings = {str(k): v for k, v in data["findings"].items() if isinstance(v, dict)}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        outcome.problems.append(f"the team's pytest left no readable results ({type(exc).__name__}), exit status "
                                f"{exit_status}{why}")
        return outcome
    if exit_status not in _REPORTED:
        outcome.problems.append(f"the team's pytest ended with exit status {exit_status}{why}")
    elif exit_status == 1 and not any(r.outcome == "failed" for r in outcome.reports):
        outcome.problems.append("the team's pytest exited 1 but reported no failure")
    return outcome


def add_findings(into: dict[str, Any], findings: Mapping[str, Any]) -> list[str]:
    """Add the team's findings without replacing any the built-in suites recorded; return the keys
    refused (``suite.key``)."""
    refused = []
    for suite, items in findings.items():
        recorded = into.setdefault(suite, {})
        for key, value in items.items():
            if key in recorded:
                refused.append(f"{suite}.{key}")
            else:
                recorded[key] = value
    return refused


def _site_dirs() -> list[Path]:
    """Folders whose ``.pth`` files a new interpreter runs: the site-packages on ``sys.path`` and
    the user site."""
    dirs = {Path(p) for p in (*site.getsitepackages(), site.getusersitepackages())}
    dirs.update(Path(p) for p in sys.path if Path(p).name in ("site-packages", "dist-packages"))
    return sorted(d for d in dirs if d.is_dir())


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        return f"unreadable: {type(exc).__name__}"


def startup_fingerprint() -> dict[str, str]:
    """What a Python process started from here runs before any of its own code, plus releasetest's
    own source: every name in each site folder, the digest of each ``.pth`` file,
    ``sitecustomize``/``usercustomize`` module and plugin entry-point list there, and of each file of
    the installed releasetest package."""
    found: dict[str, str] = {}
    for folder in _site_dirs():
        for entry in os.scandir(folder):
            if entry.name == "__pycache__":
                continue
            path = Path(entry.path)
            found[str(path)] = "present"
            if entry.name.endswith(".pth") or entry.name in ("sitecustomize.py", "usercustomize.py"):
                found[str(path)] = _digest(path)
            elif entry.name.endswith((".dist-info", ".egg-info")):
                points = path / "entry_points.txt"
                if points.is_file():
                    found[str(points)] = _digest(points)
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        found[str(path)] = _digest(path)
    return found


def startup_changes(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """Each start-up file added, removed or changed between two fingerprints, one line each."""
    lines = []
    for name in sorted(set(before) | set(after)):
        if name not in before:
            lines.append(f"{name} added")
        elif name not in after:
            lines.append(f"{name} removed")
        elif before[name] != after[name]:
            lines.append(f"{name} changed")
    return lines
