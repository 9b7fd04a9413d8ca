"""The shape every suite's findings share: a typed object with its JSON form and its summaries.

The verdict keeps each suite's findings as JSON (``verdict["findings"][suite]``), because tests on
any xdist worker record them with ``release_record(key, value)`` and workers ship them to the
controller as JSON. Readers (report, CI summary, terminal, history) turn that JSON back into the
suite's findings class with :func:`from_json` and ask it for its summaries, so only the suite's
own module knows its keys. A key a class does not declare (a user's test, a verdict hook, a
newer releasetest) is kept in ``extra`` and shown as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

T = TypeVar("T", bound="SuiteFindings")


@dataclass(frozen=True)
class Cause:
    """One blocking failure as the report's first screen says it: what went wrong, in one line,
    and what to do about it; ``test`` is the failing test it explains (None for a suite-wide one)."""

    cause: str
    fix: str
    test: str | None = None


@dataclass
class SuiteFindings:
    """A suite's findings. Subclasses declare their keys as fields (None when not recorded) and
    override the summaries they have; this base serves suites that record nothing of their own."""

    extra: dict[str, Any] = field(default_factory=dict)
    #: (label, unit) of the key figures this suite contributes to the history strip, in order.
    FIGURES: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: Fields the report's section for this suite lays out itself; the rest are "other findings".
    SHOWN: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_json(cls: type[T], data: Any) -> T:
        """The findings from their JSON form; a verdict written by an earlier release still reads
        (missing keys stay None, unknown ones go to ``extra``)."""
        data = dict(data) if isinstance(data, Mapping) else {}
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: cls._load(k, v) for k, v in data.items() if k in names}
        return cls(**known, extra={k: v for k, v in data.items() if k not in names})

    @classmethod
    def _load(cls, key: str, value: Any) -> Any:
        """A field's value from JSON; subclasses type their nested records here."""
        return value

    def to_json(self) -> dict[str, Any]:
        """The JSON form the verdict records: recorded fields (None ones left out, so a partial
        object merges into what other tests recorded) and ``extra``."""
        out = {f.name: _dump(getattr(self, f.name)) for f in fields(self) if f.name != "extra"}
        return {**{k: v for k, v in out.items() if v is not None}, **self.extra}

    def record(self, release_record: Callable[[str, Any], None]) -> None:
        """Record the fields set here through a test's ``release_record`` fixture; the run merges
        them with what other tests of the suite recorded (lists extend, mappings update)."""
        for key, value in self.to_json().items():
            release_record(key, value)

    def unshown(self) -> dict[str, Any]:
        """Recorded keys the report section does not lay out: shown as a table or JSON."""
        return {k: v for k, v in self.to_json().items() if k not in self.SHOWN}

    def key_figures(self) -> dict[str, float]:
        """This suite's figures of :data:`FIGURES` that were recorded, by label."""
        return {}

    def evidence(self) -> str | None:
        """Why these findings do not back a pass: ``recorded no evidence (...)`` when nothing was
        measured, ``recorded evidence that contradicts its passed tests: ...`` when a recorded
        decision failed; None when they back it. The base type asks nothing: the gate knows no
        measurement of a suite that is not built in."""
        return None

    def terminal_lines(self) -> list[str]:
        """Lines for pytest's terminal summary (warnings a reviewer should see before the report)."""
        return []

    def decision_lines(self) -> list[str]:
        """Lines that belong beside the decision itself, whatever it is (the comparison with the
        release in production): the report's banner, the terminal's releasetest section, the CI
        summary and ``releasetest history`` show them."""
        return []

    def warnings(self) -> list[str]:
        """What these findings add to the verdict's warnings: a problem no test can BLOCK on that a
        reviewer must still see."""
        return []

    def ci_line(self) -> str:
        """The one or two numbers a reviewer looks for first, for the CI summary's suite table."""
        return ""

    def ci_properties(self) -> dict[str, str]:
        """JUnit ``<properties>`` (name without the ``releasetest.<suite>.`` prefix, value)."""
        return {}

    def report_section(self) -> dict[str, Any]:
        """What this suite's report section shows beside its JSON form: plots and tables."""
        return {"plots": {}}

    def causes(self, suite: str, result: Mapping[str, Any] | None) -> list[Cause]:
        """Why this suite blocks, one :class:`Cause` per failure, for the report's first screen.
        Here: each failing test's message; a suite that knows its failures better says more."""
        return test_causes(suite, result)


def test_causes(suite: str, result: Mapping[str, Any] | None, explained: frozenset[str] = frozenset()) -> list[Cause]:
    """One cause per failing test of ``result`` whose name is not in ``explained``, with its message."""
    result = result or {}
    messages = result.get("messages") or {}
    out = []
    for nodeid in result.get("failing") or []:
        name = str(nodeid).rsplit("::", 1)[-1]
        if name.split("[", 1)[0] in explained:
            continue
        message = str(messages.get(nodeid) or "failed (no message)").splitlines()[0]
        out.append(Cause(f"{name}: {message}", f"read the test's message and the server log in the {suite} "
                         "evidence below; rerun only it with pytest --release-stage STAGE -k " + name.split("[")[0],
                         name))
    return out


def _dump(value: Any) -> Any:
    """Nested typed records back to JSON."""
    if isinstance(value, list):
        return [_dump(v) for v in value]
    to_json = getattr(value, "to_json", None)
    return to_json() if callable(to_json) else value
