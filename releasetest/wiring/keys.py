"""Stash keys for run state, shared by the plugin and its fixtures."""

from __future__ import annotations

from typing import Any

import pytest

from releasetest.run import ReleaseRun

RUN_KEY = pytest.StashKey[ReleaseRun]()
VERDICT_KEY = pytest.StashKey[dict[str, Any]]()
#: The SIGTERM handler that was in place before the run, restored at unconfigure.
SIGTERM_KEY = pytest.StashKey[Any]()
#: Lines to print after the verdict: report path, ``##vso`` logging commands, warnings.
OUTPUT_LINES_KEY = pytest.StashKey[list[str]]()
#: The file descriptor holding the output folder's gate lock (see :mod:`releasetest.wiring.gate_lock`).
GATE_LOCK_KEY = pytest.StashKey[int]()
#: The team's own test paths, run in their own pytest (see :mod:`releasetest.wiring.team`).
TEAM_PATHS_KEY = pytest.StashKey[list[str]]()
