"""Checking manifest and config tables: known keys, value kinds and did-you-mean, with one error shape."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from releasetest.errors import ConfigError


def typename(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def is_str(v: Any) -> bool:
    return isinstance(v, str)


def is_mapping(v: Any) -> bool:
    return isinstance(v, dict)


KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "bool": (is_bool, "True or False"),
    "int": (is_int, "a whole number"),
    "number": (is_number, "a number"),
    "str": (is_str, "a string"),
    "mapping": (is_mapping, "a mapping of keys to values"),
}


def check_mapping(data: Mapping[str, Any], schema: Mapping[str, Any], file: Path, prefix: str = "") -> None:
    """Refuse unknown keys and wrong types; ``None`` (an empty YAML value) means "not set"."""
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in schema:
            close = difflib.get_close_matches(str(key), list(schema), n=1)
            hint = f"did you mean '{prefix}{close[0]}'?" if close else (
                "remove it; known keys: " + ", ".join(sorted(schema)))
            raise ConfigError(file, dotted, "unknown key", hint)
        expected = schema[key]
        if value is None:
            continue
        if isinstance(expected, dict):
            if not isinstance(value, dict):
                raise ConfigError(file, dotted, f"expected a mapping, got {typename(value)} {value!r}",
                                  "indent its keys under it: " + ", ".join(expected))
            check_mapping(value, expected, file, prefix=f"{dotted}.")
            continue
        check, desc = KINDS[expected]
        if not check(value):
            raise ConfigError(file, dotted, f"expected {desc}, got {typename(value)} {value!r}",
                              f"write {desc}" + (" (YAML booleans: True/False)" if expected == "bool" else ""))


def require(table: Mapping[str, Any], key: str, kind: str, file: Path, prefix: str, fix: str) -> Any:
    if key not in table:
        raise ConfigError(file, prefix + key, "missing", fix)
    value = table[key]
    check, desc = KINDS[kind]
    if not check(value):
        raise ConfigError(file, prefix + key, f"expected {desc}, got {typename(value)} {value!r}", fix)
    return value


def only_keys(table: Mapping[str, Any], allowed: set[str], file: Path, prefix: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            raise ConfigError(file, prefix + key, "unknown key",
                              f"did you mean '{prefix}{close[0]}'?" if close else
                              "remove it; known keys: " + ", ".join(sorted(allowed)))

