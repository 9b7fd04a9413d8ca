"""Environment fidelity: does the endpoint run in the environment the release's conda file asks for?

A release that pins ``scikit-learn==0.20.3`` and ``python=3.6.2`` but is tested under 1.9 and
3.11 has not been tested at all as it will run in production. ``compare`` lists each pin the
serving interpreter does not satisfy (a package listed without a version pins nothing and is not
compared); ``build_isolated`` makes a virtual environment from the conda file's pip section
(cached by the file's digest), so drift shows up in DEV TEST. ``artifact_needs`` and
``unpinned_needs`` name what the release's artifacts import at load time (a pickle's
scikit-learn and joblib, an ONNX model's runtime) that the conda file leaves unpinned: the
classic pickle-version risk.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from releasetest.endpoint.sandbox import installer_env
from releasetest.errors import ConfigError
from releasetest.files import load_yaml
from releasetest.lifeline import child_kwargs
from releasetest.progress import Event, Progress, silent

_CONDA_DEP = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:(==|=|>=|<=|>|<|!=)\s*([^\s=]+))?")
#: Run by a serving interpreter other than this one: its version, and the installed version (or None) of each name
#: in argv. Looked up by name: reading every installed distribution's metadata takes ~0.3 s.
_PROBE = ("import json, sys, importlib.metadata as m\n"
          "def version(name):\n"
          "    try:\n"
          "        return m.version(name)\n"
          "    except m.PackageNotFoundError:\n"
          "        return None\n"
          "print(json.dumps({'python': '%d.%d.%d' % sys.version_info[:3],"
          " 'packages': {n: version(n) for n in sys.argv[1:]}}))")


@dataclass(frozen=True)
class CondaEnv:
    path: Path
    python: str | None  # the conda spec after "python", e.g. "=3.11" or "=3.6.2"
    pip: tuple[str, ...]
    conda: tuple[str, ...]


@dataclass(frozen=True)
class Mismatch:
    package: str
    pinned: str
    installed: str | None

    def __str__(self) -> str:
        return f"{self.package}: {self.pinned} pinned, {self.installed or 'not installed'} in the serving environment"


def parse_conda_env(path: Path) -> CondaEnv:
    doc = load_yaml(path)
    deps = doc.get("dependencies") if isinstance(doc, dict) else None
    if not isinstance(deps, list):
        raise ConfigError(path, "dependencies", "a conda environment file needs a 'dependencies' list",
                          "list python=3.x and a pip section")
    python: str | None = None
    pip: list[str] = []
    conda: list[str] = []
    for dep in deps:
        if isinstance(dep, dict) and "pip" in dep:
            if not isinstance(dep["pip"], list):
                raise ConfigError(path, "dependencies.pip", "expected a list of requirements", "e.g. - numpy==2.1.0")
            pip.extend(str(x) for x in dep["pip"])
        elif isinstance(dep, str):
            name = re.split(r"[=<>!\s]", dep, maxsplit=1)[0]
            if name == "python":
                python = dep[len("python"):].strip() or None
            elif name != "pip":
                conda.append(dep)
        else:
            raise ConfigError(path, "dependencies", f"unexpected entry {dep!r}", "write 'name=version' or a pip list")
    return CondaEnv(path=path, python=python, pip=tuple(pip), conda=tuple(conda))


def _conda_satisfied(op: str, wanted: str, have: str) -> bool:
    """conda's ``name=1.2`` means 1.2.*; ``==`` is exact; comparisons compare version tuples."""
    from packaging.version import InvalidVersion, Version

    if op == "=":
        return have == wanted or have.startswith(wanted + ".")
    try:
        h, w = Version(have), Version(wanted)
    except InvalidVersion:
        return have == wanted
    return {"==": h == w, ">=": h >= w, "<=": h <= w, ">": h > w, "<": h < w, "!=": h != w}[op]


def compare(env: CondaEnv, python_version: str, installed: dict[str, str]) -> list[Mismatch]:
    """Every pin of the conda file that the serving environment does not satisfy."""
    have = {canonicalize_name(k): v for k, v in installed.items()}
    out: list[Mismatch] = []
    if env.python:
        m = _CONDA_DEP.match("python" + env.python)
        if m and m.group(2) and not _conda_satisfied(m.group(2), m.group(3), python_version):
            out.append(Mismatch("python", "python" + env.python, python_version))
    for line in env.pip:
        if line.startswith(("-", "git+", "http")):
            continue  # options and URLs: nothing to compare by name
        try:
            req = Requirement(line)
        except InvalidRequirement:
            raise ConfigError(env.path, "dependencies.pip", f"not a pip requirement: {line!r}",
                              "write it as name==version") from None
        if not req.specifier:
            continue  # listed without a version: nothing pinned to compare
        version = have.get(canonicalize_name(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            out.append(Mismatch(req.name, str(req), version))
    for dep in env.conda:
        m = _CONDA_DEP.match(dep)
        if not m:
            continue
        version = have.get(canonicalize_name(m.group(1)))
        if m.group(2) and (version is None or not _conda_satisfied(m.group(2), m.group(3), version)):
            out.append(Mismatch(m.group(1), dep, version))
    return out


def probe(python: str, names: tuple[str, ...] = ()) -> tuple[str, dict[str, str]]:
    """Python version of an interpreter (the one that will serve) and the versions of ``names``
    installed there (those not installed are left out)."""
    if python == sys.executable:  # the usual case: no second interpreter to start
        found = {name: _installed_version(name) for name in names}
        return ".".join(map(str, sys.version_info[:3])), {n: v for n, v in found.items() if v is not None}
    out = subprocess.run([python, "-c", _PROBE, *names], capture_output=True, text=True, check=True, timeout=60)
    data = json.loads(out.stdout)
    return data["python"], {name: v for name, v in data["packages"].items() if v is not None}


def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def pinned_names(env: CondaEnv) -> tuple[str, ...]:
    """The distribution names the conda file pins to a version (pip requirements and conda
    packages); a name listed without one is not pinned."""
    names = []
    for line in env.pip:
        if not line.startswith(("-", "git+", "http")):
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.specifier:
                names.append(req.name)
    names += [m.group(1) for m in map(_CONDA_DEP.match, env.conda) if m and m.group(2)]
    return tuple(dict.fromkeys(names))


def _interpreter_for(env: CondaEnv) -> str:
    """This interpreter if it satisfies the python pin, else ``pythonX.Y`` from PATH, else an error."""
    here = ".".join(map(str, sys.version_info[:3]))
    if not env.python:
        return sys.executable
    m = _CONDA_DEP.match("python" + env.python)
    if not m or not m.group(2) or _conda_satisfied(m.group(2), m.group(3), here):
        return sys.executable
    wanted = m.group(3)
    major_minor = ".".join(wanted.split(".")[:2])
    found = shutil.which(f"python{major_minor}")
    if found:
        # A launcher shim (pyenv, py) may exist without the interpreter behind it: ask it.
        try:
            version, _ = probe(found)
        except (OSError, subprocess.SubprocessError, ValueError):
            version = None
        if version and _conda_satisfied(m.group(2), wanted, version):
            return found
    raise ConfigError(env.path, "dependencies: python" + env.python,
                      f"no python{major_minor} interpreter on this machine (releasetest runs on {here})",
                      f"install python{major_minor} here, or update the pin to the Python production will run")


#: What the gate's no-code MLflow scoring script imports besides the standard library: the inference
#: server, ``mlflow.pyfunc`` (mlflow-skinny, as Azure's MLflow images have), pandas and numpy.
NOCODE_NEEDS = ("azureml-inference-server-http", "mlflow-skinny", "pandas", "numpy")
#: A distribution that satisfies a need under another name (full mlflow includes mlflow-skinny's modules).
_SATISFIES = {"mlflow": "mlflow-skinny"}


def _named(env: CondaEnv) -> set[str]:
    """Every distribution the conda file names (pip or conda, pinned or not)."""
    names = set()
    for line in env.pip:
        if not line.startswith(("-", "git+", "http")):
            try:
                names.add(canonicalize_name(Requirement(line).name))
            except InvalidRequirement:
                continue
    names |= {canonicalize_name(m.group(1)) for m in map(_CONDA_DEP.match, env.conda) if m}
    return names | {_SATISFIES[n] for n in names if n in _SATISFIES}


def nocode_additions(env: CondaEnv) -> tuple[str, ...]:
    """What an isolated build adds to an MLflow model's own conda file for the no-code scoring script:
    each of :data:`NOCODE_NEEDS` the file does not name, pinned to the version the gate runs (its
    server wrapper and scoring script are tested against those; unpinned when the gate lacks it).
    Azure does the same: it reads the model's conda dependencies and adds what its inference server
    needs. A package the file names keeps the file's pin."""
    named = _named(env)
    added = []
    for need in NOCODE_NEEDS:
        if canonicalize_name(need) not in named:
            version = _installed_version(need)
            added.append(f"{need}=={version}" if version else need)
    return tuple(added)


def build_isolated(env: CondaEnv, cache_dir: Path, progress: Progress = silent, added: tuple[str, ...] = ()) -> str:
    """A venv with exactly the conda file's pip pins plus ``added`` (what the gate adds, e.g.
    :func:`nocode_additions`), built with uv if present, else pip, cached by digest.

    Returns its interpreter. Unsatisfiable pins raise :class:`ConfigError` quoting the installer.
    """
    requirements = (*env.pip, *added)
    names = {canonicalize_name(Requirement(x).name) for x in requirements if not x.startswith(("-", "git+", "http"))}
    if not names & {"azureml-inference-server-http", "azureml-defaults"}:
        raise ConfigError(env.path, "dependencies.pip", "the inference server is not in the pip section",
                          "add azureml-inference-server-http (azureml-defaults in older images)")
    python = _interpreter_for(env)
    target = cache_entry(env, cache_dir, python, added)
    with _entry_lock(target, env, progress):
        return _build(env, target, requirements, names, python, progress, added)


def cache_entry(env: CondaEnv, cache_dir: Path, python: str, added: tuple[str, ...] = ()) -> Path:
    """The cache folder of this conda file's environment for ``python`` plus ``added``."""
    key = env.path.read_bytes() + python.encode() + "\n".join(added).encode()
    return cache_dir / hashlib.sha256(key).hexdigest()[:16]


@contextmanager
def _entry_lock(target: Path, env: CondaEnv, progress: Progress) -> Iterator[None]:
    """Hold ``<entry>.lock`` while the entry is checked and built: a second gate building the same
    environment (another CI job on this machine) waits for the first, then finds it complete,
    instead of deleting the folder the first is installing into."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f"{target}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(env.path, "dependencies.pip",
                          f"the isolated-environment cache {target.parent} cannot be used: {exc.strerror}",
                          "set RELEASETEST_CACHE_DIR to a folder this user can write") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(Event(f"waiting for another gate's build of the isolated environment for {env.path.name} "
                           f"({target})"))
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _build(env: CondaEnv, target: Path, requirements: tuple[str, ...], names: Collection[str], python: str,
           progress: Progress, added: tuple[str, ...]) -> str:
    """The cached entry's interpreter, built first unless complete (under :func:`_entry_lock`)."""
    venv_python = target / "bin" / "python"
    if (target / ".complete").is_file():
        progress(Event(f"isolated environment for {env.path.name}: cached in {target}", detail=True))
        return str(venv_python)
    shutil.rmtree(target, ignore_errors=True)
    uv = shutil.which("uv")
    started = time.monotonic()
    plus = f" + {', '.join(added)} added by the gate" if added else ""
    progress(Event(f"building the isolated environment from {env.path.name} ({len(env.pip)} pip pins{plus}, "
                   f"{'uv' if uv else 'pip'}); cached for later runs"))
    if uv:
        steps = [[uv, "venv", "--python", python, str(target)],
                 [uv, "pip", "install", "--python", str(venv_python), *requirements]]
    else:
        steps = [[python, "-m", "venv", str(target)],
                 # As uv does: no bytecode for every installed file (about half of pip's time here);
                 # the server compiles the modules it imports when it first starts.
                 [str(venv_python), "-m", "pip", "install", "--disable-pip-version-check", "--no-compile",
                  *requirements]]
    for cmd in steps:
        proc = subprocess.run(cmd, **child_kwargs(capture_output=True, text=True, timeout=1800, env=installer_env()))
        if proc.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            # pip says "ERROR: ... <pin>"; uv says "error: No solution found" and names the pin on the
            # next line (after box-drawing characters): keep both kinds of line.
            lines = [ln.strip().lstrip("│╰─▶× ") for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
            errors = [ln for ln in lines if "error" in ln.lower() or any(n in ln.lower() for n in names)] or lines
            raise ConfigError(env.path, "dependencies.pip",
                              "the pinned environment cannot be built: " + " | ".join(errors[-4:])[:800],
                              "pin versions that exist for this Python and platform")
    (target / ".complete").write_text("ok\n")
    progress(Event(f"isolated environment built in {time.monotonic() - started:.1f} s: {target}"))
    return str(venv_python)


def report(env: CondaEnv, python: str) -> dict[str, Any]:
    """The verdict's view of the serving environment against the conda file."""
    version, installed = probe(python, pinned_names(env))
    mismatches = compare(env, version, installed)
    return {"conda_file": str(env.path), "python": version, "interpreter": python,
            "mismatches": [str(m) for m in mismatches]}


def source_root() -> str:
    """Folder holding the ``releasetest`` package, for PYTHONPATH of an isolated server (it imports
    only :mod:`releasetest.endpoint.server`, which needs nothing but the server)."""
    return str(Path(__file__).resolve().parents[2])


#: Artifact files unpickled at load time (pickle, joblib) and the runtime an ONNX model needs.
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".sav")
ONNX_RUNTIME = "onnxruntime"
#: Top-level modules whose distribution is named otherwise (else packages_distributions() is asked).
_DISTRIBUTION_OF = {"sklearn": "scikit-learn"}
#: A class named in a pickle: protocol 4+ (``SHORT_BINUNICODE module, name, STACK_GLOBAL``) and
#: protocols 0-3 (``GLOBAL module\nname\n``).
_STACK_GLOBAL = re.compile(rb"\x8c.([A-Za-z_][\w.]*)\x94?\x8c.[A-Za-z_]\w*\x94?\x93", re.S)
_GLOBAL = re.compile(rb"c([A-Za-z_][\w.]*)\n[A-Za-z_]\w*\n")
_SKLEARN_VERSION = re.compile(rb"_sklearn_version\x94?(?:\x8c.|X....)([0-9][\w.+-]*)", re.S)
#: joblib's compressed files by their first bytes (a pickle stream starts with PROTO, 0x80).
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x78")


@dataclass(frozen=True)
class ArtifactNeed:
    """A distribution an artifact file needs when the entry script loads it, and why."""

    package: str
    file: Path
    why: str


def _pickle_bytes(path: Path) -> bytes:
    """The pickle stream of a pickle or joblib file, decompressed when joblib compressed it."""
    import bz2
    import gzip
    import lzma
    import zlib

    data = path.read_bytes()
    openers: tuple[Callable[[bytes], bytes], ...] = (gzip.decompress, bz2.decompress, lzma.decompress,
                                                     zlib.decompress)
    for magic, opener in zip(_COMPRESSED, openers, strict=True):
        if data.startswith(magic):
            try:
                return opener(data)
            except (OSError, ValueError, EOFError, zlib.error, lzma.LZMAError):
                return data
    return data


def pickle_modules(path: Path) -> tuple[tuple[str, ...], str | None]:
    """The top-level modules a pickle or joblib file imports when loaded, and the scikit-learn
    version it was saved with (when it says). Read from the bytes, never unpickled (that would run
    its code); pickletools cannot walk a joblib file, whose arrays sit raw between the opcodes."""
    data = _pickle_bytes(path)
    names = [m.group(1).decode() for pattern in (_STACK_GLOBAL, _GLOBAL) for m in pattern.finditer(data)]
    top = [n.split(".")[0] for n in names]
    wanted = tuple(dict.fromkeys(t for t in top if t not in sys.stdlib_module_names
                                 and t not in ("builtins", "__builtin__", "copy_reg", "_codecs")))
    version = _SKLEARN_VERSION.search(data)
    return wanted, version.group(1).decode() if version else None


def onnx_opsets(path: Path) -> dict[str, int]:
    """An ONNX model's ``opset_import`` (domain -> version), read from its protobuf fields (field 8
    of ModelProto; domain 1, version 2 inside), so no onnx package is needed; {} when unreadable."""
    data = path.read_bytes()

    def varint(pos: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = data[pos]
            value |= (byte & 0x7F) << shift
            pos, shift = pos + 1, shift + 7
            if not byte & 0x80:
                return value, pos

    opsets: dict[str, int] = {}
    pos = 0
    try:
        while pos < len(data):
            key, pos = varint(pos)
            field, wire = key >> 3, key & 7
            if wire == 0:
                _, pos = varint(pos)
            elif wire == 2:
                size, pos = varint(pos)
                if field == 8:
                    inner, end, domain, version = pos, pos + size, "", 0
                    while inner < end:
                        k, inner = varint(inner)
                        if k & 7 == 2:
                            n, inner = varint(inner)
                            domain = data[inner:inner + n].decode() if k >> 3 == 1 else domain
                            inner += n
                        elif k & 7 == 0:
                            v, inner = varint(inner)
                            version = v if k >> 3 == 2 else version
                        else:
                            return {}
                    opsets[domain or "ai.onnx"] = version
                pos += size
            elif wire in (1, 5):
                pos += 8 if wire == 1 else 4
            else:
                return {}
    except (IndexError, UnicodeDecodeError):
        return {}
    return opsets


def _distribution(module: str) -> str:
    """The distribution that installs ``module``: most are named as they import (numpy, joblib),
    asked by name (a file lookup); only the others need the scan of every installed package's
    file list (a third of a second, made once per process)."""
    if module in _DISTRIBUTION_OF:
        return _DISTRIBUTION_OF[module]
    try:
        return importlib.metadata.distribution(module).metadata["Name"] or module
    except importlib.metadata.PackageNotFoundError:
        found = _packages_distributions().get(module)
        return found[0] if found else module


@functools.cache
def _packages_distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


def artifact_needs(files: Iterable[Path]) -> list[ArtifactNeed]:
    """What the release's artifact files need at load time: a pickle's (or joblib file's)
    libraries, an ONNX model's runtime."""
    needs: list[ArtifactNeed] = []
    for path in files:
        suffix = path.suffix.lower()
        if suffix in PICKLE_SUFFIXES:
            modules, sklearn_version = pickle_modules(path)
            kind = "a joblib file" if "joblib" in modules else "a pickle"
            for module in modules:
                saved = (f", saved with scikit-learn {sklearn_version}" if module == "sklearn" and sklearn_version
                         else "")
                needs.append(ArtifactNeed(_distribution(module), path, f"{kind} that imports {module}{saved}"))
        elif suffix == ".onnx":
            opsets = onnx_opsets(path)
            shown = ", ".join(f"{d} {v}" for d, v in opsets.items())
            needs.append(ArtifactNeed(ONNX_RUNTIME, path, f"an ONNX model (opset {shown})" if shown
                                      else "an ONNX model"))
    return needs


def unpinned_needs(env: CondaEnv, needs: Iterable[ArtifactNeed], root: Path) -> list[str]:
    """Each package an artifact needs that the conda file does not pin to a version, one line
    each naming the files and how to pin it (``installed``: the version to suggest)."""
    pinned = {canonicalize_name(n) for n in pinned_names(env)}
    by_package: dict[str, list[ArtifactNeed]] = {}
    for need in needs:
        if canonicalize_name(need.package) not in pinned:
            by_package.setdefault(need.package, []).append(need)
    lines = []
    for package, why in by_package.items():
        files = "; ".join(f"{_relative(n.file, root)} is {n.why}" for n in why)
        saved = next((n.why.rsplit("scikit-learn ", 1)[1] for n in why if "saved with scikit-learn" in n.why), None)
        version = saved or _installed_version(package)
        pin = f"{package}=={version}" if version else f"{package}==<the version it was saved with>"
        lines.append(f"{package} is not pinned in {env.path.name}, but {files}: a different version at load "
                     f"time can fail or change predictions (fix: pin it in the pip section, e.g. {pin})")
    return lines


def _relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
