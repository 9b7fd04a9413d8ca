"""The smoke suite's findings: the probes each test sent and the endpoint answered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from releasetest.checks.findings import SuiteFindings


@dataclass
class SmokeFindings(SuiteFindings):
    #: By test name: ``{"sent": n, "answered": m}`` (an answer is any HTTP status).
    probes: dict[str, dict[str, int]] | None = None

    SHOWN: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def _load(cls, key: str, value: Any) -> Any:
        return value if key != "probes" or isinstance(value, dict) else None

    def evidence(self) -> str | None:
        answered = sum(int(p.get("answered") or 0) for p in (self.probes or {}).values() if isinstance(p, dict))
        return None if answered else "recorded no evidence (no probe was answered by the endpoint)"

    def ci_line(self) -> str:
        probes = [p for p in (self.probes or {}).values() if isinstance(p, dict)]
        return f"{sum(int(p.get('answered') or 0) for p in probes)} probes answered" if probes else ""
