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
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemBytecodeCache, PackageLoader, StrictUndefined, select_autoescape

from releasetest.checks.findings import SuiteFindings
from releasetest.checks.registry import FIGURE_UNITS, findings_of, findings_type, key_figures
from releasetest.files import cache_dir, short_id
from releasetest.verdict.formatting import clip, compact_json, fmt, isolation_of

#: A log line worth quoting when a deploy fails: the server's own error.
_ERROR_LINE = re.compile(r"(Error|Exception|error:|failed)")


def release_label(verdict: Mapping[str, Any]) -> str:
    """``name@short id``; a run whose release did not load is named by its manifest."""
    rel = verdict.get("release") or {}
    if rel.get("name"):
        return f"{rel['name']}@{short_id(rel.get('id'))}"
    return f"{verdict.get('manifest') or 'release'} (not loaded)"


def history_strip(verdict: Mapping[str, Any], earlier: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """This release's key figures (accuracy or RMSE, p99, req/s) beside the last releases on the
    same stage, newest first, with why each BLOCK blocked (its first cause)."""
    if not earlier:
        return None
    runs = [(v, key_figures(v)) for v in [verdict, *reversed(earlier)]]
    labels = [label for label in FIGURE_UNITS if any(label in figures for _, figures in runs)]
    rows = []
    for i, (v, figures) in enumerate(runs):
        causes = blocking_causes(v, findings_of(v))
        reasons = [str(r) for r in v.get("reasons") or []]
        why = (causes[0]["cause"] if causes else reasons[0].splitlines()[0] if reasons else "") \
            if v.get("decision") != "PROMOTE" else ""
        rows.append({"current": i == 0, "release": release_label(v), "why": why,
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


def _deploy_quote(deploy: Mapping[str, Any]) -> str:
    """The line that says why the deploy failed: the server log's last error line, else the error's first."""
    lines = [ln.strip() for ln in str(deploy.get("log_tail") or "").splitlines() if ln.strip()]
    found = [ln for ln in lines if _ERROR_LINE.search(ln)]
    return found[-1] if found else str(deploy.get("error") or "no error recorded").splitlines()[0]


def blocking_causes(verdict: Mapping[str, Any], findings: Mapping[str, SuiteFindings]) -> list[dict[str, Any]]:
    """Each reason the run blocked, as one cause line and one fix line, first the run-wide ones
    (configuration, deploy, interruption), then each failing suite's (from its findings type), then
    reasons nobody explains (a verdict hook's), as they are."""
    if verdict.get("decision") == "PROMOTE":
        return []
    suites = verdict.get("suites") or {}
    deploy = verdict.get("deploy") or {}
    out: list[dict[str, Any]] = []

    def add(kind: str, cause: str, fix: str, anchor: str) -> None:
        out.append({"kind": kind, "cause": cause, "fix": fix, "anchor": anchor})

    stopped = False
    unexplained: list[str] = []
    for reason in (str(r).splitlines()[0] for r in verdict.get("reasons") or []):
        if reason.startswith("configuration error: "):
            stopped = True
            add("configuration", reason, "fix the file and field the message names, then run the "
                "gate again (nothing was deployed)", "release")
        elif reason.startswith("deploy failed: "):
            stopped = True
            add("deploy", reason, f"the server said “{_deploy_quote(deploy)}”: fix what it names (score.py's "
                "init(), the conda file, the model files) and run the gate again; the server log is below", "log")
        elif reason.startswith("run interrupted: "):
            add("interrupted", reason, "run the gate again: an interrupted run never promotes", "decision")
        elif reason.startswith("required suite "):
            add("not run", reason, "select the suite's tests (check -m, -k and the paths given to pytest) or "
                "leave it out of --release-require", "decision")
        elif not any(reason.startswith(f"{name}: ") for name in suites) and not any(
                reason.startswith(f"{str(t).rsplit('::', 1)[-1]}: ") for r in suites.values()
                for t in (r or {}).get("failing") or []):
            unexplained.append(reason)
    if not stopped:
        for name, result in suites.items():
            if (result or {}).get("failed") or (result or {}).get("errors"):
                found = findings.get(name) or findings_type(name)()
                for c in found.causes(name, result):
                    add(name, c.cause, c.fix, f"suite-{name}")
    for reason in unexplained:
        add("other", reason, "added by a pytest_releasetest_verdict hook or a plugin: see its message", "decision")
    return out


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
    config_error = any(str(r).startswith("configuration error: ") for r in verdict.get("reasons") or [])
    stopped = "the deploy failed" if deploy.get("error") and not deploy.get("ok") else \
        "the release did not load" if config_error else None
    for s in suites:
        result = s["result"] or {}
        # Tests that could not run because the run stopped before them are no evidence of their own.
        s["failing"] = bool(result.get("failed") or result.get("errors")) and not stopped
        s["line"] = ", ".join(f"{result.get(k, 0)} {k}" for k in ("passed", "failed", "errors", "skipped")
                              if result.get(k)) or "did not run"
        if stopped and not result.get("passed"):
            s["line"] = f"not run: {stopped}"
        figures = s["findings"].key_figures()
        s["brief"] = ", ".join(f"{k} {fmt(v)}{FIGURE_UNITS.get(k, '')}" for k, v in figures.items()) \
            or s["findings"].ci_line()
    return {
        "v": verdict,
        "decision": verdict.get("decision", "BLOCK"),
        "reasons": verdict.get("reasons") or [],
        "release": release,
        "short_id": short_id(release.get("id")),
        "isolation": isolation_of(verdict),
        "counts": counts,
        "deploy": deploy,
        "suites": suites,
        "show_log": bool(deploy.get("log_tail")) and (not deploy.get("ok") or verdict.get("decision") != "PROMOTE"),
        "digest_ok": digest_ok,
        "history": history_strip(verdict, list(history or [])),
        "causes": blocking_causes(verdict, findings),
        "decision_lines": [{"line": line, "anchor": f"suite-{name}"} for name, found in findings.items()
                           for line in found.decision_lines()],
        "defects": [x for s in suites for x in s.get("tolerated") or []],
        "defects_summary": "; ".join(s["tolerated_summary"] for s in suites if s.get("tolerated")),
        "label": release_label(verdict),
        "deploy_quote": _deploy_quote(deploy),
        "stopped": stopped,
    }


@functools.lru_cache(maxsize=1)
def _env() -> Environment:
    """Built once per process. Compiling the template costs fifty times more than rendering it
    (0.2 s of each gate's CPU), so the compiled code is kept in this user's cache, as Python keeps
    bytecode; Jinja2 compiles again when the template's source changes."""
    env = Environment(loader=PackageLoader("releasetest.verdict", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, bytecode_cache=_template_cache())
    env.filters["fmt"] = fmt
    env.filters["compact_json"] = compact_json
    env.filters["clip"] = clip
    return env


def _template_cache() -> FileSystemBytecodeCache | None:
    """The compiled-template cache, or none where the cache folder cannot be made (a read-only home)."""
    folder = cache_dir("templates")
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return None
    return FileSystemBytecodeCache(str(folder))


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
