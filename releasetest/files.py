"""File and time helpers: safe YAML reading, sha256 of files, atomic JSON writes, log tails, UTC stamps,
and the short form of a digest."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from releasetest.errors import ConfigError

#: Largest YAML/TOML file the harness parses; configs are a few hundred bytes.
MAX_CONFIG_BYTES = 1_000_000


def read_bytes(path: Path, what: str, referenced_from: Path | None, key: str | None) -> bytes:
    if not path.is_file():
        raise ConfigError(referenced_from or path, key,
                          f"{what} not found at {path}",
                          "check the path (relative paths are resolved from the file that names them)")
    data = path.read_bytes()
    if len(data) > MAX_CONFIG_BYTES and what != "artifact":
        raise ConfigError(path, None, f"file is {len(data)} bytes, larger than the {MAX_CONFIG_BYTES} "
                          "a configuration file may have", "point at the right file")
    return data


def load_yaml(path: Path, referenced_from: Path | None = None, key: str | None = None) -> Any:
    """Parse YAML with the safe loader (no object construction) and point at the bad line."""
    text = read_bytes(path, "YAML file", referenced_from, key)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(path, where, f"invalid YAML: {problem}",
                          "fix the syntax there (indentation, a missing colon or quote)") from None


def cache_dir(kind: str) -> Path:
    """This user's cache folder for ``kind`` (isolated environments, compiled templates):
    ``$RELEASETEST_CACHE_DIR/<kind>``, else ``~/.cache/releasetest/<kind>``; not created here."""
    return Path(os.environ.get("RELEASETEST_CACHE_DIR", Path.home() / ".cache" / "releasetest")) / kind


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def short_id(digest: object) -> str:
    """The first 12 hex digits of a ``sha256:...`` id (a release, a verdict): enough to tell
    releases apart in a line of text; ``unknown`` when there is none."""
    return str(digest or "").split(":", 1)[-1][:12] or "unknown"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write via a temp file and rename, so a reader never sees half a verdict."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=False, default=str)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_tail(path: Path, lines: int = 40) -> str | None:
    """Last ``lines`` lines of a log file, or None when there is none yet."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as f:
            return "".join(deque(f, maxlen=lines)).rstrip("\n") or None
    except FileNotFoundError:
        return None

