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

    def terminal_lines(self) -> list[str]:
        """Lines for pytest's terminal summary (warnings a reviewer should see before the report)."""
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


def _dump(value: Any) -> Any:
    """Nested typed records back to JSON."""
    if isinstance(value, list):
        return [_dump(v) for v in value]
    to_json = getattr(value, "to_json", None)
    return to_json() if callable(to_json) else value
