"""One checker for every manifest and config table: declared keys, value kinds, bounds, did-you-mean.

A table's schema is a :class:`Table` of :class:`Key` entries (nested tables are ``Table`` values),
so adding a setting is one line: ``"task": Key("str", "what the model predicts",
default="classification", choices=("classification", "regression"))``. :func:`check` refuses
what the schema does not allow with the one :class:`~releasetest.errors.ConfigError` shape
(``file: key: problem (fix: ...)``) and returns the values with defaults filled in. ``None`` (an
empty YAML value) means "not set".
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from releasetest.errors import ConfigError

Syntax = Literal["toml", "yaml"]


def typename(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


#: kind -> (accepts, description in an error message).
KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "any": (lambda v: True, "a value"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
    "number": (_is_number, "a number"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "list": (lambda v: isinstance(v, list), "a list"),
    "mapping": (lambda v: isinstance(v, dict), "a table"),
}


_TABLE_WORD = {"toml": "a table", "yaml": "a mapping of keys to values"}


def _literal(value: Any, syntax: Syntax) -> str:
    """``value`` as the user would write it in that file."""
    if isinstance(value, bool):
        return ("true" if value else "false") if syntax == "toml" else str(value)
    if isinstance(value, str) and syntax == "toml":
        return f'"{value}"'
    return str(value)


def _kind_desc(kind: str, syntax: Syntax) -> str:
    if kind == "bool" and syntax == "yaml":
        return "True or False"
    if kind == "mapping":
        return _TABLE_WORD[syntax]
    return KINDS[kind][1]


@dataclass(frozen=True)
class Key:
    """One setting: its kind, what it means (the fix text), default and allowed values.

    ``ge``/``gt``/``le`` bound a number, or the length of a string, list or table.
    """

    kind: str
    help: str = ""
    default: Any = None
    required: bool = False
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    choices: tuple[Any, ...] = ()
    #: Shown in the fix as ``e.g. key = example``; the default when not given.
    example: Any = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; use one of {', '.join(KINDS)}")

    def expectation(self, syntax: Syntax) -> str:
        desc = _kind_desc(self.kind, syntax)
        bounds = [f"{op} {limit:g}" for op, limit in ((">=", self.ge), (">", self.gt), ("<=", self.le))
                  if limit is not None]
        if not bounds:
            return desc
        if self.kind in ("str", "list", "mapping"):
            return f"{desc} of length " + " and ".join(bounds)
        return f"{desc} " + " and ".join(bounds)

    def fix(self, name: str, syntax: Syntax) -> str:
        example = self.example if self.example is not None else self.default
        parts = [self.help] if self.help else [f"write {self.expectation(syntax)}"]
        if self.choices:
            parts.append("use one of: " + ", ".join(_literal(c, syntax) for c in self.choices))
        elif example is not None:
            parts.append(f"e.g. {name}{' = ' if syntax == 'toml' else ': '}{_literal(example, syntax)}")
        return "; ".join(parts)


@dataclass(frozen=True)
class Table:
    """A table of known keys; ``noun`` names what its keys are when they are names (e.g. metrics)."""

    keys: Mapping[str, Key | Table]
    help: str = ""
    noun: str = "key"
    #: Present, it must hold at least one entry.
    nonempty: bool = False
    required: bool = False


def unknown(name: str, known: list[str], file: Path | str, dotted: str, noun: str = "key") -> ConfigError:
    """The error for a name that is not one of ``known``, with did-you-mean."""
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f"did you mean '{close[0]}'?" if close else "remove it or use one of: " + ", ".join(known)
    return ConfigError(file, dotted, "unknown key" if noun == "key" else f"unknown {noun} '{name}'", hint)


def _size(value: Any) -> float:
    return len(value) if isinstance(value, (str, list, dict)) else value


def check_value(value: Any, key: Key, file: Path | str, dotted: str, syntax: Syntax = "toml") -> Any:
    """One value against its :class:`Key`: kind, bounds and choices. Returns it unchanged."""
    name = dotted.rsplit(".", 1)[-1]
    accepts = KINDS[key.kind][0]
    if not accepts(value):
        raise ConfigError(file, dotted, f"expected {_kind_desc(key.kind, syntax)}, got {typename(value)} {value!r}",
                          key.fix(name, syntax))
    if key.choices and value not in key.choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in key.choices], n=1)
        raise ConfigError(file, dotted, f"unknown {name} {value!r}",
                          f"did you mean '{close[0]}'?" if close else key.fix(name, syntax))
    size = _size(value)
    if ((key.ge is not None and not size >= key.ge) or (key.gt is not None and not size > key.gt)
            or (key.le is not None and not size <= key.le)):
        raise ConfigError(file, dotted, f"expected {key.expectation(syntax)}, got {value!r}", key.fix(name, syntax))
    return value


def check(data: Mapping[str, Any] | None, schema: Table, file: Path | str, prefix: str = "",
          syntax: Syntax = "toml") -> dict[str, Any]:
    """Check ``data`` against ``schema``; every key of the schema in the result, defaults filled in.

    ``prefix`` is the dotted path of ``data`` itself (``"load."``), so errors name the full key.
    A nested table that is not given comes back with its own defaults.
    """
    data = data or {}
    known = list(schema.keys)
    for name in data:
        if name not in schema.keys:
            raise unknown(name, known, file, f"{prefix}{name}", schema.noun)
    out: dict[str, Any] = {}
    for name, spec in schema.keys.items():
        dotted = f"{prefix}{name}"
        value = data.get(name)
        if value is None:
            if spec.required:
                help_text = spec.help if isinstance(spec, Table) else spec.fix(name, syntax)
                raise ConfigError(file, dotted, "missing", help_text or "add it")
            out[name] = check({}, spec, file, f"{dotted}.", syntax) if isinstance(spec, Table) else spec.default
        elif isinstance(spec, Table):
            out[name] = check_table(value, spec, file, dotted, syntax)
        else:
            out[name] = check_value(value, spec, file, dotted, syntax)
    return out


def check_table(value: Any, schema: Table, file: Path | str, dotted: str, syntax: Syntax = "toml") -> dict[str, Any]:
    """A value that must be a table (named ``dotted``), checked against ``schema``."""
    what = _TABLE_WORD[syntax]
    fix = schema.help or "give it keys: " + ", ".join(schema.keys)
    if not isinstance(value, dict):
        raise ConfigError(file, dotted, f"expected {what}, got {typename(value)} {value!r}", fix)
    if schema.nonempty and not value:
        raise ConfigError(file, dotted, f"expected {what} with at least one entry, got an empty one", fix)
    return check(value, schema, file, f"{dotted}.", syntax)
