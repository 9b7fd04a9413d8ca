"""The CI job summary: a short Markdown digest of the verdict, and where CI systems want it.

GitHub Actions shows ``$GITHUB_STEP_SUMMARY`` on the run page; Azure DevOps shows a file
announced with ``##vso[task.uploadsummary]`` on the build summary. Both get the same text: the
decision, the lines beside it (the comparison with production), its reasons, the release, and one
line per suite with its key numbers (each suite's findings type says which).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from releasetest.checks.registry import decision_lines, findings_of
from releasetest.files import short_id
from releasetest.verdict.formatting import isolation_of


def summary_markdown(verdict: Mapping[str, Any], report_name: str | None = "report.html") -> str:
    rel = verdict.get("release") or {}
    icon = "✅" if verdict.get("decision") == "PROMOTE" else "⛔"
    lines = [f"## {icon} releasetest: {verdict.get('decision')} {rel.get('name', '?')}@{short_id(rel.get('id'))}", "",
             f"Stage **{verdict.get('stage')}** → {verdict.get('promote_to') or '–'} · target "
             f"{verdict.get('target')}{_isolation(verdict)} · {verdict.get('finished_at', '')}", ""]
    beside = decision_lines(verdict)
    lines += [f"**{line}**" for line in beside] + ([""] if beside else [])
    lines += [f"- {str(r).splitlines()[0]}" for r in verdict.get("reasons") or []]
    lines += ["", "| suite | passed | failed | errors | skipped | key numbers |",
              "| --- | --: | --: | --: | --: | --- |"]
    findings = findings_of(verdict)
    for name, res in (verdict.get("suites") or {}).items():
        key = (findings[name].ci_line() if name in findings else "").replace("|", "\\|")
        not_run = f" + {res['not_run']} not run" if res.get("not_run") else ""
        lines.append(f"| {name} | {res.get('passed', 0)} | {res.get('failed', 0)} | {res.get('errors', 0)} | "
                     f"{res.get('skipped', 0)}{not_run} | {key} |")
    if rel.get("artifacts"):
        lines += ["", "Artifacts: " + ", ".join(f"`{a['name']}:{a['version']}`" for a in rel["artifacts"])
                  + f" · release id `{rel.get('id')}`"]
    if report_name:
        lines += ["", f"Full report: `{report_name}` (in the job's artifacts)."]
    return "\n".join(lines) + "\n"


def _isolation(verdict: Mapping[str, Any]) -> str:
    found = isolation_of(verdict)
    return f" (isolation {found[0]})" if found else ""


def publish_summary(markdown: str, out: Path, environ: Mapping[str, str]) -> list[str]:
    """Write ``out``, append to the GitHub step summary when set; return lines to print on stdout.

    The Azure DevOps agent reads logging commands from the job's stdout, so the caller prints the
    returned ``##vso`` line (pytest's terminal summary does).
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown, encoding="utf-8")
    gh = environ.get("GITHUB_STEP_SUMMARY")
    if gh:
        with open(gh, "a", encoding="utf-8") as f:
            f.write(markdown)
    if environ.get("TF_BUILD"):
        return [f"##vso[task.uploadsummary]{out.resolve()}"]
    return []


def ci_properties(verdict: Mapping[str, Any]) -> dict[str, str]:
    """Name/value pairs for the JUnit XML ``<properties>``: the decision and the key metrics.

    CI dashboards that read JUnit (Azure DevOps test tab, GitHub test reporters) then carry
    the release decision next to the test results, without parsing the verdict.
    """
    rel = verdict.get("release") or {}
    props = {
        "releasetest.decision": str(verdict.get("decision")),
        "releasetest.release": str(rel.get("name", "")),
        "releasetest.release_id": str(rel.get("id", "")),
        "releasetest.stage": str(verdict.get("stage", "")),
        "releasetest.promote_to": str(verdict.get("promote_to") or ""),
        "releasetest.verdict_digest": str(verdict.get("digest", "")),
        "releasetest.reason": next(iter(str((verdict.get("reasons") or [""])[0]).splitlines()), ""),
    }
    for a in rel.get("artifacts") or []:
        props[f"releasetest.artifact.{a['name']}"] = str(a["version"])
    for suite, found in findings_of(verdict).items():
        props |= {f"releasetest.{suite}.{name}": value for name, value in found.ci_properties().items()}
    return props
