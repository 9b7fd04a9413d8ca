"""The QA reviewer's report: one self-contained HTML file rendered from a verdict.

Pure (no pytest): the plugin renders it after every run, ``releasetest report`` re-renders it
from a stored verdict. No CDN, no JavaScript, no external fonts: the file opens offline on a
laptop and in a CI artifact viewer. This module assembles the page; plots come from
:mod:`releasetest.verdict.charts`, numbers from :mod:`releasetest.verdict.formatting`.

Each suite's section is its findings type's :meth:`~releasetest.checks.findings.SuiteFindings.report_section`
(looked up in :mod:`releasetest.checks.registry`); findings it does not lay out are shown as a
compact table or JSON, so a new finding never breaks the report.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from releasetest.checks.findings import SuiteFindings
from releasetest.checks.registry import FIGURE_UNITS, findings_of, findings_type, key_figures
from releasetest.files import short_id
from releasetest.verdict.formatting import compact_json, fmt


def history_strip(verdict: Mapping[str, Any], earlier: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """This release's key figures (accuracy or RMSE, p99, req/s) beside the last releases on the
    same stage, newest first."""
    if not earlier:
        return None
    runs = [(v, key_figures(v)) for v in [verdict, *reversed(earlier)]]
    labels = [label for label in FIGURE_UNITS if any(label in figures for _, figures in runs)]
    rows = []
    for i, (v, figures) in enumerate(runs):
        rel = v.get("release") or {}
        rows.append({"current": i == 0, "release": f"{rel.get('name', '?')}@{short_id(rel.get('id'))}",
                     "when": str(v.get("finished_at", "–")), "decision": str(v.get("decision", "?")),
                     "figures": [fmt(figures[label]) + FIGURE_UNITS[label] if label in figures else "–"
                                 for label in labels]})
    return {"columns": labels, "rows": rows}


def table_of(value: Any) -> dict[str, Any] | None:
    """A list of same-shaped dicts, or a dict of scalars, as columns and rows; else None."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        cols = list(dict.fromkeys(k for v in value for k in v))
        return {"columns": cols, "rows": [[fmt(v.get(c)) for c in cols] for v in value[:200]],
                "more": max(0, len(value) - 200)}
    if isinstance(value, dict) and value and all(not isinstance(v, (dict, list)) for v in value.values()):
        return {"columns": ["key", "value"], "rows": [[str(k), fmt(v)] for k, v in value.items()], "more": 0}
    return None


def suite_view(name: str, result: Mapping[str, Any] | None, findings: SuiteFindings | None) -> dict[str, Any]:
    found = findings or findings_type(name)()
    view: dict[str, Any] = {"name": name, "result": result, "findings": found, "plots": {}}
    tests = (result or {}).get("tests") or {}
    messages = (result or {}).get("messages") or {}
    view["tests"] = [{"id": tid, "name": tid.split("::", 1)[-1], **t, "message": messages.get(tid)}
                     for tid, t in tests.items()]
    if not tests and result:
        view["tests"] = [{"id": t, "name": t.split("::", 1)[-1], "outcome": "failed", "seconds": None,
                          "message": messages.get(t)} for t in result.get("failing", [])]
    view.update(found.report_section())
    view["other"] = [{"key": k, "table": table_of(v), "text": fmt(v)} for k, v in found.unshown().items()]
    return view


def _suite_names(verdict: Mapping[str, Any]) -> list[str]:
    seen = list(verdict.get("suites") or {}) + list(verdict.get("findings") or {})
    return list(dict.fromkeys([*(verdict.get("required_suites") or []), *seen]))


def build_view(verdict: Mapping[str, Any], digest_ok: bool | None = None,
               history: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    release = verdict.get("release") or {}
    counts = {k: sum(int((r or {}).get(k, 0)) for r in (verdict.get("suites") or {}).values())
              for k in ("passed", "failed", "errors", "skipped")}
    deploy = verdict.get("deploy") or {}
    findings = findings_of(verdict)
    suites = [suite_view(n, (verdict.get("suites") or {}).get(n), findings.get(n)) for n in _suite_names(verdict)]
    return {
        "v": verdict,
        "decision": verdict.get("decision", "BLOCK"),
        "reasons": verdict.get("reasons") or [],
        "release": release,
        "short_id": short_id(release.get("id")),
        "counts": counts,
        "deploy": deploy,
        "suites": suites,
        "show_log": bool(deploy.get("log_tail")) and (not deploy.get("ok") or verdict.get("decision") != "PROMOTE"),
        "digest_ok": digest_ok,
        "history": history_strip(verdict, list(history or [])),
    }


@functools.lru_cache(maxsize=1)
def _env() -> Environment:
    """Built once per process: compiling the template costs more than rendering it."""
    env = Environment(loader=PackageLoader("releasetest.verdict", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = fmt
    env.filters["compact_json"] = compact_json
    return env


def render_html(verdict: Mapping[str, Any], digest_ok: bool | None = None,
                history: Sequence[Mapping[str, Any]] | None = None) -> str:
    """The report as one HTML string; ``digest_ok`` shows whether the verdict's seal still holds,
    ``history`` holds earlier verdicts on the same stage for the history strip."""
    return _env().get_template("report.html.j2").render(**build_view(verdict, digest_ok, history))


def write_report(verdict: Mapping[str, Any], path: Path, digest_ok: bool | None = None,
                 history: Sequence[Mapping[str, Any]] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_html(verdict, digest_ok, history), encoding="utf-8")
    tmp.replace(path)
    return path
