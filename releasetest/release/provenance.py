"""Where a verdict came from: git commit of the release, Python and key package versions.

A reviewer who approves a release needs to know what was tested *with*, not only what was
tested; these go into the verdict (so the digest covers them) and the report shows them.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

#: Packages whose versions change what the endpoint does or how it is tested.
KEY_PACKAGES = ("releasetest", "pytest", "pytest-xdist", "azureml-inference-server-http", "inference-schema",
                "numpy", "onnxruntime", "scikit-learn", "joblib")

#: Deployment-config keys that hold secrets; the verdict and report show that they are set, never the value.
SECRET_KEYS = frozenset({"primaryKey", "secondaryKey", "sslKey", "sslCertificate", "password"})


def environment() -> dict[str, Any]:
    packages = {}
    for name in KEY_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"python": platform.python_version(), "implementation": sys.implementation.name,
            "platform": platform.platform(terse=True), "packages": packages}


def git_info(path: Path) -> dict[str, Any] | None:
    """Commit, branch and dirty flag of the repository holding ``path``; None outside git."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, timeout=10,
                                 check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    status = git("status", "--porcelain", "--", ".")
    return {"commit": commit, "branch": git("rev-parse", "--abbrev-ref", "HEAD"), "dirty": bool(status)}


def redact(config: Any) -> Any:
    """A copy of a config mapping with secret values replaced by ``"***"``."""
    if isinstance(config, dict):
        return {k: ("***" if k in SECRET_KEYS and v else redact(v)) for k, v in config.items()}
    if isinstance(config, list):
        return [redact(v) for v in config]
    return config
