"""Number and value formatting shared by the report, the CI summary and the suites' summaries.

Pure standard library: the terminal and ``releasetest history`` format figures without loading
the report's template engine.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


def fmt(value: Any) -> str:
    """Numbers to 4 significant digits (ints as they are), everything else as short text."""
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "–"}[value]
    if isinstance(value, int):
        return str(value)  # ports, pids and counts read better without separators
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, str):
        return value
    return compact_json(value)


def compact_json(value: Any, limit: int = 600) -> str:
    """JSON on one line, cut at ``limit`` characters."""
    text = json.dumps(value, separators=(", ", ": "), default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def num(value: Any) -> float | None:
    """A finite number as a float; None for anything else (booleans, NaN, text), so a hand-edited
    verdict cannot break a chart."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)



def isolation_of(verdict: Mapping[str, Any]) -> tuple[str, str] | None:
    """The sandbox the release's code ran in, as (kind, the endpoint's one line); None when the
    verdict records none (the release ran elsewhere: url, Azure ML; or no endpoint was built). A
    failed deploy has no endpoint, but its deploy record keeps the line."""
    line = (verdict.get("endpoint") or {}).get("isolation") or (verdict.get("deploy") or {}).get("isolation")
    if not line:
        return None
    return str(line).removeprefix("isolation: ").split(" ", 1)[0], str(line)


def clip(text: str, limit: int = 160) -> str:
    """``text`` cut at the last word boundary before ``limit`` characters, with "…"; whole if it fits.
    A single word longer than ``limit`` is cut at ``limit`` (there is no word boundary to keep)."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:(") + "…"


def plural(count: int, noun: str) -> str:
    """``1 file``, ``2 files``: a count with its noun (English's regular plural only)."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
