"""Errors a user can act on. Each one renders as a message, never as a traceback."""

from __future__ import annotations

from pathlib import Path


class ReleaseTestError(Exception):
    """Base class: something about the release or its endpoint that the user must fix."""


class ConfigError(ReleaseTestError):
    """A release file is missing, malformed or inconsistent.

    Carries the file, the key and the fix, so the message points at the one line to change.
    """

    def __init__(self, file: Path | str | None, key: str | None, problem: str, fix: str | None = None):
        self.file = str(file) if file is not None else None
        self.key = key
        self.problem = problem
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        where = self.file or "release configuration"
        if self.key:
            where += f": {self.key}"
        text = f"{where}: {self.problem}"
        if self.fix:
            text += f" (fix: {self.fix})"
        return text


class DeployError(ReleaseTestError):
    """The endpoint could not be brought up; names the cause and quotes the server log.

    ``answered``: the server is up and answered the readiness check, but not with what the
    release recorded (wrong golden predictions, an error for the golden rows): a verdict about
    the model, not a crash, and said so."""

    def __init__(self, cause: str, log_tail: str | None = None, answered: bool = False):
        self.cause = cause
        self.log_tail = log_tail
        self.answered = answered
        text = cause
        if log_tail:
            text += "\n--- server log (tail) ---\n" + log_tail
        super().__init__(text)


class EndpointError(ReleaseTestError):
    """The endpoint answered in a way the scoring contract does not allow, or not at all."""


class WrongAnswer(EndpointError):
    """The endpoint is up (liveness answered), but its answer to the golden rows is not the one
    recorded at training time, or an error: the message says which rows and how."""


class EndpointUnreachable(EndpointError):
    """Nothing accepted the connection (refused, unresolvable name, connect timeout): no server answered at all."""


class EndpointDied(EndpointError):
    """The endpoint's server process is gone: every later test would fail the same way."""
