"""The QA reviewer's report: one self-contained HTML file rendered from a verdict.

Pure (no pytest): the plugin renders it after every run, ``releasetest report`` re-renders it
from a stored verdict. No CDN, no JavaScript, no external fonts: the file opens offline on a
laptop and in a CI artifact viewer. Plots are inline SVG written by hand here (bars, a heatmap,
a scatter over time): a plotting library would add a heavy dependency for four simple shapes.

Suite findings are rendered by the key conventions the suites share (``metrics``,
``thresholds``, ``confusion_matrix``, ``latency_ms``, ``timeline``, schema ``findings`` ...);
any other key is shown as a compact table or JSON, so a new finding never breaks the report.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

#: Keys each suite's section renders specially; everything else goes to "other findings".
KNOWN_KEYS: dict[str, frozenset[str]] = {
    "acceptance": frozenset({"metrics", "thresholds", "references", "confusion_matrix", "parity",
                             "class_distribution"}),
    "schema": frozenset({"findings", "requests_sent", "policy"}),
    "load": frozenset({"latency_ms", "achieved_rps", "target_rps", "errors", "timeouts", "slo", "timeline",
                       "capacity_rps", "slo_derivation"}),
}
PERCENTILES = ("p50", "p90", "p95", "p99", "p99_9", "max")
#: Points drawn in the latency timeline; longer series are thinned evenly.
MAX_TIMELINE_POINTS = 2000

PASS, FAIL, MUTED, ACCENT, GRID = "#1a7f37", "#cf222e", "#6e7781", "#0969da", "#d0d7de"


# ---------------------------------------------------------------------------------------------
# Formatting


def fmt(value: Any) -> str:
    """Numbers to 4 significant digits (ints as they are), everything else as short text."""
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "–"}[value]
    if isinstance(value, int):
        return str(value)  # ports, pids and counts read better without separators
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, str):
        return value
    return compact_json(value)


def compact_json(value: Any, limit: int = 600) -> str:
    text = json.dumps(value, separators=(", ", ": "), default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _nice_max(v: float) -> float:
    """A round axis end at or above ``v`` (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 x 10^k): quarters stay readable."""
    if v <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * exp >= v:
            return step * exp
    return 10 * exp


def _svg(width: int, height: int, body: Iterable[str], label: str) -> Markup:
    return Markup(f'<svg class="plot" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
                  f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
                  f'<title>{escape(label)}</title>{"".join(body)}</svg>')


def _text(x: float, y: float, text: str, anchor: str = "start", cls: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"'
            f'{f" class={chr(34)}{cls}{chr(34)}" if cls else ""}>{escape(text)}</text>')


# ---------------------------------------------------------------------------------------------
# Plots (inline SVG, by hand)


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    bound: float | None = None
    passed: bool | None = None
    markers: tuple[tuple[str, float], ...] = ()


def bar_chart(bars: list[Bar], label: str, unit: str = "") -> Markup:
    """Horizontal bars; a bound is a dark tick, references are hollow diamonds."""
    if not bars:
        return Markup("")
    width, left, right, row = 640, 170, 70, 30
    top = 24
    height = top + row * len(bars) + 24
    top_value = max([b.value for b in bars] + [b.bound or 0 for b in bars]
                    + [v for b in bars for _, v in b.markers] + [0.0])
    scale_max = _nice_max(top_value * 1.05)
    plot_w = width - left - right

    def x(v: float) -> float:
        return left + plot_w * max(0.0, v) / scale_max

    body = []
    for i in range(5):
        tick = scale_max * i / 4
        body.append(f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top - 6}" y2="{height - 20}" '
                    f'stroke="{GRID}" stroke-width="1"/>')
        body.append(_text(x(tick), height - 6, fmt(tick) + unit, "middle", "axis"))
    for i, b in enumerate(bars):
        y = top + i * row
        colour = ACCENT if b.passed is None else (PASS if b.passed else FAIL)
        body.append(_text(left - 8, y + 16, b.label, "end"))
        body.append(f'<rect x="{left}" y="{y + 5}" width="{max(1.0, x(b.value) - left):.1f}" height="16" '
                    f'rx="2" fill="{colour}" opacity="0.85"/>')
        label_x = max(x(b.value), x(b.bound) if b.bound is not None else 0.0)
        body.append(_text(label_x + 5, y + 17, fmt(b.value) + unit, "start", "val"))
        if b.bound is not None:
            body.append(f'<line x1="{x(b.bound):.1f}" x2="{x(b.bound):.1f}" y1="{y + 1}" y2="{y + 25}" '
                        f'stroke="#24292f" stroke-width="2.5"><title>bound {escape(fmt(b.bound))}</title></line>')
        for name, v in b.markers:
            cx, cy = x(v), y + 13
            body.append(f'<path d="M{cx:.1f} {cy - 6} L{cx + 6:.1f} {cy} L{cx:.1f} {cy + 6} L{cx - 6:.1f} {cy} Z" '
                        f'fill="#fff" stroke="#8250df" stroke-width="1.5"><title>{escape(name)}: '
                        f'{escape(fmt(v))}</title></path>')
    return _svg(width, height, body, label)


def heatmap(labels: list[Any], matrix: list[list[Any]], label: str) -> Markup:
    """Confusion matrix: rows are true labels, columns predicted; the diagonal is green."""
    n = len(labels)
    if n == 0 or len(matrix) != n or any(len(r) != n for r in matrix):
        return Markup("")
    cell, left, top = min(72, 360 // n), 90, 46
    width, height = left + cell * n + 10, top + cell * n + 10
    peak = max((_num(v) or 0.0) for r in matrix for v in r) or 1.0
    body = [_text(left + cell * n / 2, 14, "predicted", "middle", "axis"),
            f'<text x="14" y="{top + cell * n / 2:.1f}" transform="rotate(-90 14 {top + cell * n / 2:.1f})" '
            f'text-anchor="middle" class="axis">true</text>']
    for j, lab in enumerate(labels):
        body.append(_text(left + cell * j + cell / 2, top - 8, str(lab), "middle"))
        body.append(_text(left - 8, top + cell * j + cell / 2 + 5, str(lab), "end"))
    for i, r in enumerate(matrix):
        for j, v in enumerate(r):
            share = (_num(v) or 0.0) / peak
            base = "26,127,55" if i == j else "207,34,46"
            body.append(f'<rect x="{left + cell * j}" y="{top + cell * i}" width="{cell - 2}" height="{cell - 2}" '
                        f'rx="3" fill="rgba({base},{0.08 + 0.8 * share:.2f})"/>')
            body.append(_text(left + cell * j + cell / 2 - 1, top + cell * i + cell / 2 + 5, fmt(v), "middle",
                              "cell-dark" if share > 0.55 else "cell"))
    return _svg(width, height, body, label)


def timeline(points: list[list[Any]], label: str, bound: tuple[str, float] | None = None) -> Markup:
    """Latency of each request over the run: a scatter with an optional SLO line."""
    pts = [(t, v) for t, v in ((_num(p[0]), _num(p[1])) for p in points if isinstance(p, (list, tuple))
                               and len(p) >= 2) if t is not None and v is not None]
    if not pts:
        return Markup("")
    if len(pts) > MAX_TIMELINE_POINTS:
        step = len(pts) / MAX_TIMELINE_POINTS
        pts = [pts[int(i * step)] for i in range(MAX_TIMELINE_POINTS)]
    width, height, left, right, top, bottom = 640, 240, 56, 16, 12, 34
    t_max = _nice_max(max(t for t, _ in pts))
    v_max = _nice_max(max([v for _, v in pts] + [bound[1] if bound else 0.0]) * 1.05)
    pw, ph = width - left - right, height - top - bottom

    def x(t: float) -> float:
        return left + pw * t / t_max

    def y(v: float) -> float:
        return top + ph * (1 - v / v_max)

    body = []
    for i in range(5):
        vt, tt = v_max * i / 4, t_max * i / 4
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{y(vt):.1f}" y2="{y(vt):.1f}" stroke="{GRID}"/>')
        body.append(_text(left - 6, y(vt) + 4, fmt(vt), "end", "axis"))
        body.append(_text(x(tt), height - bottom + 16, fmt(tt) + " s", "middle", "axis"))
    body.append(_text(left, height - 2, "time since start (s) · latency (ms)", "start", "axis"))
    dots = "".join(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="1.8"/>' for t, v in pts)
    body.append(f'<g fill="{ACCENT}" fill-opacity="0.45">{dots}</g>')
    if bound is not None:
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{y(bound[1]):.1f}" y2="{y(bound[1]):.1f}" '
                    f'stroke="{FAIL}" stroke-width="1.5" stroke-dasharray="6 4"/>')
        body.append(_text(width - right - 4, y(bound[1]) - 5, f"{bound[0]} {fmt(bound[1])} ms", "end", "val"))
    return _svg(width, height, body, label)


# ---------------------------------------------------------------------------------------------
# View model: what the template shows, computed here so the template stays a plain layout


def _threshold_bars(thresholds: Any) -> list[Bar]:
    bars = []
    for t in thresholds if isinstance(thresholds, list) else []:
        if not isinstance(t, dict) or _num(t.get("value")) is None:
            continue
        markers = (("reference", v),) if (v := _num(t.get("reference"))) is not None else ()
        label = str(t.get("metric", "?")) + (f" ({t['kind']})" if t.get("kind") else "")
        bars.append(Bar(label, _num(t["value"]) or 0.0, _num(t.get("bound")),
                        t.get("passed") if isinstance(t.get("passed"), bool) else None, markers))
    return bars


def _metric_bars(metrics: Any, references: Any) -> list[Bar]:
    if not isinstance(metrics, dict):
        return []
    refs = references if isinstance(references, dict) else {}
    bars = []
    for name, value in metrics.items():
        if (v := _num(value)) is None:
            continue
        markers = tuple((ref, rv) for ref, vals in refs.items() if isinstance(vals, dict)
                        and (rv := _num(vals.get(name))) is not None)
        bars.append(Bar(str(name), v, markers=markers))
    return bars


def _latency_bars(latency: Any, slo: Any) -> list[Bar]:
    if not isinstance(latency, dict):
        return []
    bounds = {str(s.get("name")): s for s in slo if isinstance(s, dict)} if isinstance(slo, list) else {}
    bars = []
    for key in [*PERCENTILES, *(k for k in latency if k not in PERCENTILES)]:
        if (v := _num(latency.get(key))) is None:
            continue
        s = next((s for n, s in bounds.items() if key in n.replace(".", "_").split("_")
                  or n.endswith(key)), None)
        bars.append(Bar(key.replace("_", "."), v, _num(s.get("bound")) if s else None,
                        s.get("passed") if s and isinstance(s.get("passed"), bool) else None))
    return bars


def _timeline_bound(slo: Any) -> tuple[str, float] | None:
    for s in slo if isinstance(slo, list) else []:
        if isinstance(s, dict) and (b := _num(s.get("bound"))) is not None and "p9" in str(s.get("name")):
            return str(s.get("name")), b
    return None


def table_of(value: Any) -> dict[str, Any] | None:
    """A list of same-shaped dicts, or a dict of scalars, as columns and rows; else None."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        cols = list(dict.fromkeys(k for v in value for k in v))
        return {"columns": cols, "rows": [[fmt(v.get(c)) for c in cols] for v in value[:200]],
                "more": max(0, len(value) - 200)}
    if isinstance(value, dict) and value and all(not isinstance(v, (dict, list)) for v in value.values()):
        return {"columns": ["key", "value"], "rows": [[str(k), fmt(v)] for k, v in value.items()], "more": 0}
    return None


def suite_view(name: str, result: Mapping[str, Any] | None, findings: Mapping[str, Any] | None) -> dict[str, Any]:
    f = dict(findings or {})
    known = KNOWN_KEYS.get(name, frozenset())
    view: dict[str, Any] = {"name": name, "result": result, "findings": f, "plots": {}}
    tests = (result or {}).get("tests") or {}
    messages = (result or {}).get("messages") or {}
    view["tests"] = [{"id": tid, "name": tid.split("::", 1)[-1], **t, "message": messages.get(tid)}
                     for tid, t in tests.items()]
    if not tests and result:
        view["tests"] = [{"id": t, "name": t.split("::", 1)[-1], "outcome": "failed", "seconds": None,
                          "message": messages.get(t)} for t in result.get("failing", [])]
    if name == "acceptance":
        view["plots"]["thresholds"] = bar_chart(_threshold_bars(f.get("thresholds")),
                                                "metrics against thresholds")
        view["plots"]["metrics"] = bar_chart(_metric_bars(f.get("metrics"), f.get("references")),
                                             "metrics against references")
        cm = f.get("confusion_matrix")
        if isinstance(cm, dict):
            view["plots"]["confusion"] = heatmap(list(cm.get("labels") or []), list(cm.get("matrix") or []),
                                                 "confusion matrix")
        refs = f.get("references")
        if isinstance(refs, dict) and refs:
            metric_names = list(dict.fromkeys(k for v in refs.values() if isinstance(v, dict) for k in v))
            rows = [["this release", *[fmt((f.get("metrics") or {}).get(m)) for m in metric_names]]]
            rows += [[str(r), *[fmt(v.get(m)) if isinstance(v, dict) else "–" for m in metric_names]]
                     for r, v in refs.items()]
            view["references"] = {"columns": ["", *metric_names], "rows": rows, "more": 0}
    if name == "load":
        view["plots"]["latency"] = bar_chart(_latency_bars(f.get("latency_ms"), f.get("slo")),
                                             "latency percentiles", " ms")
        if isinstance(f.get("timeline"), list):
            view["plots"]["timeline"] = timeline(f["timeline"], "latency over time", _timeline_bound(f.get("slo")))
    view["other"] = [{"key": k, "table": table_of(v), "text": fmt(v)} for k, v in f.items() if k not in known]
    return view


def _suite_names(verdict: Mapping[str, Any]) -> list[str]:
    seen = list(verdict.get("suites") or {}) + list(verdict.get("findings") or {})
    return list(dict.fromkeys([*(verdict.get("required_suites") or []), *seen]))


def build_view(verdict: Mapping[str, Any], digest_ok: bool | None = None) -> dict[str, Any]:
    release = verdict.get("release") or {}
    rid = str(release.get("id") or "")
    counts = {k: sum(int((r or {}).get(k, 0)) for r in (verdict.get("suites") or {}).values())
              for k in ("passed", "failed", "errors", "skipped")}
    deploy = verdict.get("deploy") or {}
    suites = [suite_view(n, (verdict.get("suites") or {}).get(n), (verdict.get("findings") or {}).get(n))
              for n in _suite_names(verdict)]
    return {
        "v": verdict,
        "decision": verdict.get("decision", "BLOCK"),
        "reasons": verdict.get("reasons") or [],
        "release": release,
        "short_id": rid.split(":", 1)[-1][:12] if rid else "unknown",
        "counts": counts,
        "deploy": deploy,
        "suites": suites,
        "show_log": bool(deploy.get("log_tail")) and (not deploy.get("ok") or verdict.get("decision") != "PROMOTE"),
        "digest_ok": digest_ok,
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


def render_html(verdict: Mapping[str, Any], digest_ok: bool | None = None) -> str:
    """The report as one HTML string; ``digest_ok`` shows whether the verdict's seal still holds."""
    return _env().get_template("report.html.j2").render(**build_view(verdict, digest_ok))


def write_report(verdict: Mapping[str, Any], path: Path, digest_ok: bool | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_html(verdict, digest_ok), encoding="utf-8")
    tmp.replace(path)
    return path
