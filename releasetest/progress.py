"""Progress for the person watching a run: what the gate is doing while it waits.

Domain code (deploy, environment builds, load) reports through a :data:`Progress` callable, so it
imports no pytest; the plugin turns the events into terminal lines
(:mod:`releasetest.wiring.terminal`), and code run without a terminal passes :func:`silent`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    """One progress line."""

    text: str
    #: A reading the next one replaces (load ticks): rewritten in place on a TTY, a plain line in CI.
    live: bool = False
    #: Shown only under ``-v``.
    detail: bool = False


Progress = Callable[[Event], None]


def silent(event: Event) -> None:
    """For runs nobody watches (the CLI's promote, unit tests of domain code)."""
