"""The schema suite's findings: each contract problem with its request and curl line, the policy
it was judged under and the requests sent, with their summaries."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from releasetest.checks.findings import SuiteFindings

#: A finding that warns (recorded, run still passes) or fails the test.
DEFECT, FAILURE = "defect", "failure"
#: Severities that do not block, and why: a ``defect`` is what the release's policy tolerates
#: (under ``azure``, what Azure ML's own server does), recorded as a warning, never failed.
NON_BLOCKING = {DEFECT: "does not block: the {policy} policy tolerates it"}


@dataclass(frozen=True)
class Finding:
    """One contract problem, as the verdict records it (``findings.schema.findings``)."""

    kind: str
    severity: str
    status: int | None
    body: str
    curl: str
    message: str
    #: The kind of wrong answer (``answered 500 (a client error should be 4xx)``), shared by every
    #: probe that got it, so the terminal groups by it; empty when the kind says it all.
    problem: str = ""

    @classmethod
    def from_json(cls, data: Any) -> Finding:
        d = data if isinstance(data, dict) else {}
        return cls(str(d.get("kind", "?")), str(d.get("severity", "")), d.get("status"), str(d.get("body") or ""),
                   str(d.get("curl") or ""), str(d.get("message") or ""), str(d.get("problem") or ""))

    def to_json(self) -> dict[str, Any]:
        """As recorded; ``problem`` only when there is one, as verdicts before it had none."""
        return {k: v for k, v in asdict(self).items() if k != "problem" or v}


@dataclass
class SchemaFindings(SuiteFindings):
    findings: list[Finding] | None = None
    policy: str | None = None
    requests_sent: int | None = None
    #: Requests sent by each xdist worker (``main`` without xdist): the counts add up across them.
    requests_by_process: dict[str, int] | None = None

    SHOWN: ClassVar[frozenset[str]] = frozenset({"findings", "requests_sent", "policy", "requests_by_process"})

    @classmethod
    def _load(cls, key: str, value: Any) -> Any:
        if key == "findings":
            return [Finding.from_json(f) for f in value if isinstance(f, dict)] if isinstance(value, list) else None
        return value

    def defects(self) -> list[Finding]:
        return [f for f in self.findings or [] if f.severity == DEFECT]

    def terminal_lines(self) -> list[str]:
        """Tolerated defects, one line per kind of problem with a count and the probes that showed
        it (each finding, with its body and curl line, is in the report)."""
        kinds: dict[str, list[str]] = {}
        for f in self.defects():
            kinds.setdefault(f.problem or f.kind, []).append(f.kind)
        if not kinds:
            return []
        return [f"contract defects tolerated under the {self.policy} policy, by kind "
                "(each with its request and curl line in the report):"] + \
            [f"  {kind}: {len(names)} ({', '.join(names)})" if names != [kind] else f"  {kind}: 1"
             for kind, names in sorted(kinds.items(), key=lambda kv: -len(kv[1]))]

    def ci_line(self) -> str:
        if self.findings is None:
            return ""
        defects = len(self.defects())
        return f"{defects} defects, {len(self.findings) - defects} failures"

    def ci_properties(self) -> dict[str, str]:
        return {"defects": str(len(self.defects()))}

    def report_section(self) -> dict[str, Any]:
        """Each finding with whether it blocks: red when it does, amber with the reason when not."""
        why = {k: v.format(policy=self.policy or "release's") for k, v in NON_BLOCKING.items()}
        return {"plots": {}, "schema_findings": [{**f.to_json(), "blocks": f.severity not in why,
                                                  "why": why.get(f.severity)} for f in self.findings or []]}
