"""The QA reviewer's report: one self-contained HTML file rendered from a verdict.

Pure (no pytest): the plugin renders it after every run, ``releasetest report`` re-renders it
from a stored verdict. No CDN, no JavaScript, no external fonts: the file opens offline on a
laptop and in a CI artifact viewer. Plots are inline SVG written by hand here (bars, a heatmap,
line and scatter plots on linear or log axes, a histogram): see docs/report.md for why.

Suite findings are rendered by the key conventions the suites share (``metrics``,
``thresholds``, ``confusion_matrix``, ``latency_ms``, ``timeline``, schema ``findings`` ...);
any other key is shown as a compact table or JSON, so a new finding never breaks the report.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

#: Keys each suite's section renders specially; everything else goes to "other findings".
KNOWN_KEYS: dict[str, frozenset[str]] = {
    "acceptance": frozenset({"metrics", "thresholds", "references", "reference_errors", "confusion_matrix",
                             "parity", "class_distribution", "curves", "task", "predicted_vs_actual",
                             "residuals"}),
    "schema": frozenset({"findings", "requests_sent", "policy", "requests_by_process"}),
    "load": frozenset({"latency_ms", "achieved_rps", "target_rps", "errors", "timeouts", "slo", "timeline",
                       "capacity_rps", "slo_derivation", "requests", "service_ms"}),
}
#: Schema finding severities that do not block, and why: a ``defect`` is what the release's policy
#: tolerates (under ``azure``, what Azure ML's own server does), recorded as a warning, never failed.
NON_BLOCKING = {"defect": "does not block: the {policy} policy tolerates it"}
#: Key figures of the history strip: (label, suite, finding path, unit).
KEY_FIGURES = (("accuracy", "acceptance", ("metrics", "accuracy"), ""),
               ("RMSE", "acceptance", ("metrics", "rmse"), ""),
               ("p99", "load", ("latency_ms", "p99"), " ms"),
               ("req/s", "load", ("achieved_rps",), ""))
#: Characters of a bar label drawn in full (7 px each at most); a longer one is cut, whole in its tooltip.
MAX_LABEL = 40
#: Points drawn in the latency timeline; longer series are thinned evenly.
MAX_TIMELINE_POINTS = 2000

PASS, FAIL, MUTED, ACCENT, GRID = "#1a7f37", "#cf222e", "#6e7781", "#0969da", "#d0d7de"
#: One colour per class or series, distinguishable in print and for common colour blindness.
SERIES = ("#0969da", "#bc4c00", "#8250df", "#1a7f37", "#cf222e", "#6e7781")


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
    """Horizontal bars; a bound is a dark tick, references are hollow diamonds.

    The axis ends at 1 when every figure is a share (0..1), else at a round number above the data;
    each value label sits at the end of its own bar.
    """
    if not bars:
        return Markup("")
    width, row, top, right = 720, 30, 24, 64
    left = 16 + 7 * max(min(len(b.label), MAX_LABEL) for b in bars)
    height = top + row * len(bars) + 24
    values = [b.value for b in bars] + [b.bound for b in bars if b.bound is not None] \
        + [v for b in bars for _, v in b.markers]
    top_value = max(values + [0.0])
    scale_max = 1.0 if 0 < top_value <= 1 and min(values) >= 0 else _nice_max(top_value * 1.05)
    plot_w = width - left - right

    def x(v: float) -> float:
        return left + plot_w * min(max(0.0, v), scale_max) / scale_max

    body = []
    for i in range(5):
        tick = scale_max * i / 4
        body.append(f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top - 6}" y2="{height - 20}" '
                    f'stroke="{GRID}" stroke-width="1"/>')
        body.append(_text(x(tick), height - 6, fmt(tick) + unit, "middle", "axis"))
    for i, b in enumerate(bars):
        y = top + i * row
        colour = ACCENT if b.passed is None else (PASS if b.passed else FAIL)
        short = b.label if len(b.label) <= MAX_LABEL else b.label[:MAX_LABEL - 1] + "…"
        body.append(f'<text x="{left - 8}" y="{y + 16}" text-anchor="end"><title>{escape(b.label)}</title>'
                    f'{escape(short)}</text>')
        body.append(f'<rect x="{left}" y="{y + 5}" width="{max(1.0, x(b.value) - left):.1f}" height="16" '
                    f'rx="2" fill="{colour}" opacity="0.85"/>')
        body.append(_text(x(b.value) + 5, y + 17, fmt(b.value) + unit, "start", "val"))
        if b.bound is not None and 0 <= b.bound <= scale_max:
            body.append(f'<line x1="{x(b.bound):.1f}" x2="{x(b.bound):.1f}" y1="{y + 1}" y2="{y + 25}" '
                        f'stroke="#24292f" stroke-width="2.5"><title>bound {escape(fmt(b.bound))}</title></line>')
        for name, v in b.markers:
            cx, cy = x(v), y + 13
            body.append(f'<path d="M{cx:.1f} {cy - 6} L{cx + 6:.1f} {cy} L{cx:.1f} {cy + 6} L{cx - 6:.1f} {cy} Z" '
                        f'fill="#fff" stroke="#8250df" stroke-width="1.5"><title>{escape(name)}: '
                        f'{escape(fmt(v))}</title></path>')
    return _svg(width, height, body, label)


def heatmap(labels: list[Any], matrix: list[list[Any]], label: str) -> Markup:
    """Confusion matrix: rows are true labels, columns predicted; each cell shows its count and its
    share of the row (the class's recall on the diagonal); the diagonal is green."""
    n = len(labels)
    if n == 0 or len(matrix) != n or any(len(r) != n for r in matrix):
        return Markup("")
    cell, left, top = max(48, min(84, 420 // n)), 90, 46
    width, height = left + cell * n + 10, top + cell * n + 10
    totals = [sum(_num(v) or 0.0 for v in r) for r in matrix]
    body = [_text(left + cell * n / 2, 14, "predicted", "middle", "axis"),
            f'<text x="14" y="{top + cell * n / 2:.1f}" transform="rotate(-90 14 {top + cell * n / 2:.1f})" '
            f'text-anchor="middle" class="axis">true</text>']
    for j, lab in enumerate(labels):
        body.append(_text(left + cell * j + cell / 2, top - 8, str(lab), "middle"))
        body.append(_text(left - 8, top + cell * j + cell / 2 + 5, str(lab), "end"))
    for i, r in enumerate(matrix):
        for j, v in enumerate(r):
            share = (_num(v) or 0.0) / totals[i] if totals[i] else 0.0
            base = "26,127,55" if i == j else "207,34,46"
            cls = "cell-dark" if share > 0.55 else "cell"
            cx, cy = left + cell * j + cell / 2 - 1, top + cell * i + cell / 2
            body.append(f'<rect x="{left + cell * j}" y="{top + cell * i}" width="{cell - 2}" height="{cell - 2}" '
                        f'rx="3" fill="rgba({base},{0.08 + 0.8 * share:.2f})"/>')
            body.append(_text(cx, cy, fmt(v), "middle", cls))
            body.append(_text(cx, cy + 15, f"{share:.1%}", "middle", cls + " rate"))
    return _svg(width, height, body, label)


def _points(raw: Any) -> list[tuple[float, float]]:
    """``[[x, y], ...]`` with finite numbers only; anything else is dropped."""
    pts = ((_num(p[0]), _num(p[1])) for p in raw if isinstance(p, (list, tuple)) and len(p) >= 2) \
        if isinstance(raw, list) else ()
    return [(a, b) for a, b in pts if a is not None and b is not None]


def _thin(pts: list[tuple[float, float]], limit: int) -> list[tuple[float, float]]:
    if len(pts) <= limit:
        return pts
    step = len(pts) / limit
    return [pts[int(i * step)] for i in range(limit)]


@dataclass(frozen=True)
class Series:
    name: str
    points: list[tuple[float, float]]
    lines: bool = True


@dataclass(frozen=True)
class Axis:
    title: str
    low: float
    high: float
    log: bool = False
    ticks: tuple[tuple[float, str], ...] = ()

    def at(self, v: float, start: float, length: float) -> float:
        if self.log:
            lo, hi = math.log10(self.low), math.log10(self.high)
            return start + length * (math.log10(min(max(v, self.low), self.high)) - lo) / (hi - lo)
        return start + length * (min(max(v, self.low), self.high) - self.low) / (self.high - self.low or 1.0)

    def tick_marks(self) -> tuple[tuple[float, str], ...]:
        if self.ticks:
            return self.ticks
        return tuple((self.low + (self.high - self.low) * i / 4, fmt(self.low + (self.high - self.low) * i / 4))
                     for i in range(5))


def xy_plot(series: list[Series], xa: Axis, ya: Axis, label: str,
            guide: tuple[tuple[float, float], tuple[float, float]] | None = None,
            hline: tuple[str, float] | None = None, note: str | None = None) -> Markup:
    """Lines or dots on linear or log axes, with a dashed guide segment (the chance diagonal, y = x)
    and a labelled horizontal line (an SLO) drawn only when it lies inside the y range."""
    series = [s for s in series if s.points]
    if not series:
        return Markup("")
    width, left, right, top, bottom = 480, 58, 26, 14, 48
    legend_h = 16 * len(series) if len(series) > 1 else 0
    height = 280 + legend_h
    pw, ph = width - left - right, height - top - bottom - legend_h

    def x(v: float) -> float:
        return xa.at(v, left, pw)

    def y(v: float) -> float:
        return top + ph - ya.at(v, 0, ph)

    body = []
    for v, text in ya.tick_marks():
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="{GRID}"/>')
        body.append(_text(left - 6, y(v) + 4, text, "end", "axis"))
    for v, text in xa.tick_marks():
        body.append(f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{top}" y2="{top + ph}" stroke="{GRID}"/>')
        body.append(_text(x(v), top + ph + 15, text, "middle", "axis"))
    body.append(_text(left + pw / 2, top + ph + 32, xa.title, "middle", "axis"))
    body.append(f'<text x="12" y="{top + ph / 2:.1f}" transform="rotate(-90 12 {top + ph / 2:.1f})" '
                f'text-anchor="middle" class="axis">{escape(ya.title)}</text>')
    if guide is not None:
        (x0, y0), (x1, y1) = guide
        body.append(f'<line x1="{x(x0):.1f}" y1="{y(y0):.1f}" x2="{x(x1):.1f}" y2="{y(y1):.1f}" '
                    f'stroke="{MUTED}" stroke-dasharray="4 4"/>')
    for k, s in enumerate(series):
        colour = SERIES[k % len(SERIES)]
        if s.lines:
            d = " ".join(f"{'M' if i == 0 else 'L'}{x(a):.1f} {y(b):.1f}" for i, (a, b) in enumerate(s.points))
            body.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="2"/>')
        else:
            dots = "".join(f'<circle cx="{x(a):.1f}" cy="{y(b):.1f}" r="1.8"/>' for a, b in s.points)
            body.append(f'<g fill="{colour}" fill-opacity="0.5">{dots}</g>')
        if legend_h:
            ly = height - legend_h + 16 * k + 4
            body.append(f'<rect x="{left}" y="{ly}" width="14" height="4" fill="{colour}"/>')
            body.append(_text(left + 20, ly + 6, s.name, "start", "axis"))
    if hline is not None and ya.low <= hline[1] <= ya.high:
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{y(hline[1]):.1f}" y2="{y(hline[1]):.1f}" '
                    f'stroke="{FAIL}" stroke-width="1.5" stroke-dasharray="6 4"/>')
        body.append(_text(width - right - 4, y(hline[1]) - 5, f"{hline[0]} {fmt(hline[1])}", "end", "val"))
    if note:
        body.append(_text(width - right - 4, top + 12, note, "end", "val"))
    return _svg(width, height, body, label)


def histogram(values: list[float], label: str, unit: str, bins: int = 24) -> Markup:
    """Counts of ``values`` in equal-width bins from 0 to a round number above the largest."""
    if not values:
        return Markup("")
    high = _nice_max(max(values) * 1.02)
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int(max(0.0, v) / high * bins))] += 1
    width, left, right, top, bottom = 480, 58, 26, 14, 48
    pw, ph = width - left - right, 280 - top - bottom
    peak = _nice_max(max(counts))
    xa = Axis(f"latency ({unit})", 0.0, high)
    body = []
    for i in range(5):
        c = peak * i / 4
        yy = top + ph - ph * c / peak
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="{GRID}"/>')
        body.append(_text(left - 6, yy + 4, fmt(c), "end", "axis"))
    bw = pw / bins
    for i, c in enumerate(counts):
        h = ph * c / peak
        body.append(f'<rect x="{left + i * bw + 1:.1f}" y="{top + ph - h:.1f}" width="{bw - 2:.1f}" '
                    f'height="{h:.1f}" fill="{ACCENT}" opacity="0.8"><title>{fmt(high * i / bins)}–'
                    f'{fmt(high * (i + 1) / bins)} {escape(unit)}: {c}</title></rect>')
    for v, text in xa.tick_marks():
        body.append(_text(xa.at(v, left, pw), top + ph + 15, text, "middle", "axis"))
    body.append(_text(left + pw / 2, top + ph + 32, xa.title, "middle", "axis"))
    body.append(f'<text x="12" y="{top + ph / 2:.1f}" transform="rotate(-90 12 {top + ph / 2:.1f})" '
                f'text-anchor="middle" class="axis">requests</text>')
    return _svg(width, 280, body, label)


def timeline(points: list[list[Any]], label: str, bound: tuple[str, float] | None = None) -> Markup:
    """Latency of each request over the run, scaled to the data: the SLO line is drawn when it lies
    in that range and stated on the chart when it is above it."""
    pts = _thin(_points(points), MAX_TIMELINE_POINTS)
    if not pts:
        return Markup("")
    top_v = _nice_max(max(v for _, v in pts) * 1.05)
    note = None
    if bound is not None and bound[1] > top_v:
        note = f"{bound[0]} {fmt(bound[1])} ms: above the chart"
    xa = Axis("time since start (s)", 0.0, _nice_max(max(t for t, _ in pts)))
    ya = Axis("latency (ms)", 0.0, top_v)
    return xy_plot([Series("latency", pts, lines=False)], xa, ya, label,
                   hline=(bound[0], bound[1]) if bound else None, note=note)


#: Percentile levels of the HDR curve, with their share of requests above (1 - q) for the log axis.
HDR_LEVELS = (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p99_9", 99.9))


def percentile_curve(latency: Any, label: str, bound: tuple[str, float] | None = None) -> Markup:
    """HDR-style latency by percentile: x is 1/(1 - q) on a log axis, so the tail gets the room."""
    if not isinstance(latency, dict):
        return Markup("")
    pts = [(100.0 / (100.0 - q), v) for key, q in HDR_LEVELS if (v := _num(latency.get(key))) is not None]
    if len(pts) < 2:
        return Markup("")
    top_v = _nice_max(max(v for _, v in pts) * 1.05)
    ticks = tuple((100.0 / (100.0 - q), f"{q:g}%") for _, q in HDR_LEVELS)
    xa = Axis("percentile (log scale of 1 / (1 - q))", 2.0, 1000.0, log=True, ticks=ticks)
    ya = Axis("latency (ms)", 0.0, top_v)
    note = f"{bound[0]} {fmt(bound[1])} ms: above the chart" if bound and bound[1] > top_v else None
    return xy_plot([Series("latency", pts)], xa, ya, label, hline=bound, note=note)


def roc_plots(curves: Any) -> dict[str, Markup]:
    """ROC and precision-recall curves per class, as the acceptance suite records them."""
    if not isinstance(curves, dict):
        return {}
    roc = [Series(f"class {c}", _points(p)) for c, p in (curves.get("roc") or {}).items()]
    pr = [Series(f"class {c}", _points(p)) for c, p in (curves.get("pr") or {}).items()]
    return {k: v for k, v in {
        "roc": xy_plot(roc, Axis("false positive rate", 0, 1), Axis("true positive rate", 0, 1),
                       "ROC curves, one vs rest", guide=((0, 0), (1, 1))),
        "pr": xy_plot(pr, Axis("recall", 0, 1), Axis("precision", 0, 1),
                      "precision-recall curves, one vs rest"),
    }.items() if v}


def regression_plots(findings: Mapping[str, Any]) -> dict[str, Markup]:
    """Predicted against actual (with y = x) and residuals against predicted (with zero)."""
    out: dict[str, Markup] = {}
    pva = _thin(_points(findings.get("predicted_vs_actual")), MAX_TIMELINE_POINTS)
    if pva:
        lo = min(min(a, p) for a, p in pva)
        hi = max(max(a, p) for a, p in pva)
        span = (hi - lo) * 0.05 or 1.0
        axis_lo, axis_hi = lo - span, hi + span
        out["pva"] = xy_plot([Series("rows", pva, lines=False)], Axis("actual", axis_lo, axis_hi),
                             Axis("predicted", axis_lo, axis_hi), "predicted vs actual",
                             guide=((axis_lo, axis_lo), (axis_hi, axis_hi)))
    res = _thin(_points(findings.get("residuals")), MAX_TIMELINE_POINTS)
    if res:
        px = [p for p, _ in res]
        r_abs = max(abs(r) for _, r in res) * 1.05 or 1.0
        xspan = (max(px) - min(px)) * 0.05 or 1.0
        out["residuals"] = xy_plot([Series("rows", res, lines=False)],
                                   Axis("predicted", min(px) - xspan, max(px) + xspan),
                                   Axis("residual (actual − predicted)", -r_abs, r_abs), "residuals",
                                   guide=((min(px) - xspan, 0.0), (max(px) + xspan, 0.0)))
    return out


# ---------------------------------------------------------------------------------------------
# View model: what the template shows, computed here so the template stays a plain layout


def _reference_name(t: Mapping[str, Any]) -> str:
    """What a threshold compares against, in words: the minimum, a named baseline, the champion."""
    ref = t.get("reference")
    if ref is None or t.get("kind") == "min":
        return "minimum"
    if isinstance(ref, str):
        return "champion" if ref == "champion" else f"{ref} baseline"
    return "reference"


def threshold_rows(thresholds: Any) -> list[dict[str, Any]]:
    """Each threshold with the name of what it compares against and the compared value."""
    rows = []
    for t in thresholds if isinstance(thresholds, list) else []:
        if not isinstance(t, dict):
            continue
        ref_value = t.get("reference_value") if isinstance(t.get("reference"), str) else t.get("reference")
        rows.append({**t, "against": _reference_name(t), "reference_value": _num(ref_value)})
    return rows


def _threshold_bars(rows: list[dict[str, Any]]) -> list[Bar]:
    bars = []
    for t in rows:
        if (value := _num(t.get("value"))) is None:
            continue
        ref = t["reference_value"]
        markers = ((t["against"], ref),) if ref is not None else ()
        bars.append(Bar(f"{t.get('metric', '?')} vs {t['against']}", value, _num(t.get("bound")),
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


def _timeline_bound(slo: Any) -> tuple[str, float] | None:
    for s in slo if isinstance(slo, list) else []:
        if isinstance(s, dict) and (b := _num(s.get("bound"))) is not None and "p9" in str(s.get("name")):
            return str(s.get("name")), b
    return None


def distribution_table(dist: Any) -> dict[str, Any] | None:
    """Class distributions (``{"holdout": {class: share}, "predicted": ...}``) as one row per class;
    shares as percentages, counts as they are."""
    if not isinstance(dist, dict) or not all(isinstance(v, dict) for v in dist.values()):
        return None
    classes = list(dict.fromkeys(c for v in dist.values() for c in v))

    def cell(x: Any) -> str:
        n = _num(x)
        return f"{n:.1%}" if n is not None and isinstance(x, float) and 0 <= n <= 1 else fmt(x)

    return {"columns": ["class", *dist], "rows": [[c, *(cell(v.get(c)) for v in dist.values())] for c in classes],
            "more": 0}


def schema_findings(findings: Any, policy: Any) -> list[dict[str, Any]]:
    """Schema findings with whether each blocks: red when it does, amber with the reason when not."""
    why = {k: v.format(policy=policy or "release's") for k, v in NON_BLOCKING.items()}
    return [{**x, "blocks": str(x.get("severity")) not in why, "why": why.get(str(x.get("severity")))}
            for x in findings if isinstance(x, dict)] if isinstance(findings, list) else []


def _figure(verdict: Mapping[str, Any], suite: str, path: tuple[str, ...]) -> float | None:
    node: Any = (verdict.get("findings") or {}).get(suite)
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return _num(node)


def key_figures(verdict: Mapping[str, Any]) -> dict[str, float]:
    """The :data:`KEY_FIGURES` the verdict has, by label: the history strip's and ``releasetest
    history``'s columns."""
    return {label: x for label, suite, path, _ in KEY_FIGURES if (x := _figure(verdict, suite, path)) is not None}


def history_strip(verdict: Mapping[str, Any], earlier: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """This release's key figures (accuracy or RMSE, p99, req/s) beside the last releases on the
    same stage, newest first."""
    runs = [verdict, *reversed(earlier)]
    figures = [f for f in KEY_FIGURES if any(_figure(v, f[1], f[2]) is not None for v in runs)]
    if not earlier:
        return None
    rows = []
    for i, v in enumerate(runs):
        rel = v.get("release") or {}
        rid = str(rel.get("id") or "")
        rows.append({"current": i == 0, "release": f"{rel.get('name', '?')}@{rid.split(':', 1)[-1][:12]}",
                     "when": str(v.get("finished_at", "–")), "decision": str(v.get("decision", "?")),
                     "figures": [fmt(x) + unit if (x := _figure(v, suite, path)) is not None else "–"
                                 for _, suite, path, unit in figures]})
    return {"columns": [f[0] for f in figures], "rows": rows}


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
        view["thresholds"] = threshold_rows(f.get("thresholds"))
        view["plots"]["thresholds"] = bar_chart(_threshold_bars(view["thresholds"]), "metrics against thresholds")
        view["plots"]["metrics"] = bar_chart(_metric_bars(f.get("metrics"), f.get("references")),
                                             "metrics against references")
        cm = f.get("confusion_matrix")
        if isinstance(cm, dict):
            view["plots"]["confusion"] = heatmap(list(cm.get("labels") or []), list(cm.get("matrix") or []),
                                                 "confusion matrix")
        view["plots"].update(roc_plots(f.get("curves")))
        if f.get("task") == "regression":
            view["plots"].update(regression_plots(f))
        errors = f.get("reference_errors")
        view["reference_errors"] = [f"{k}: {v}" for k, v in errors.items()] if isinstance(errors, dict) else []
        view["distribution"] = distribution_table(f.get("class_distribution"))
        refs = f.get("references")
        if isinstance(refs, dict) and refs:
            metric_names = list(dict.fromkeys(k for v in refs.values() if isinstance(v, dict) for k in v))
            rows = [["this release", *[fmt((f.get("metrics") or {}).get(m)) for m in metric_names]]]
            rows += [[str(r), *[fmt(v.get(m)) if isinstance(v, dict) else "–" for m in metric_names]]
                     for r, v in refs.items()]
            view["references"] = {"columns": ["", *metric_names], "rows": rows, "more": 0}
    if name == "schema":
        view["schema_findings"] = schema_findings(f.get("findings"), f.get("policy"))
    if name == "load":
        bound = _timeline_bound(f.get("slo"))
        view["plots"]["percentiles"] = percentile_curve(f.get("latency_ms"), "latency by percentile", bound)
        pts = _points(f.get("timeline"))
        if pts:
            view["plots"]["histogram"] = histogram([v for _, v in pts], "latency histogram", "ms")
            view["plots"]["timeline"] = timeline(f["timeline"], "latency over time", bound)
            every = f.get("requests") == len(pts)
            view["histogram_of"] = (f"all {len(pts)} requests" if every else
                                    f"the {len(pts)} timeline points (the slowest request of each time bucket)")
    view["other"] = [{"key": k, "table": table_of(v), "text": fmt(v)} for k, v in f.items() if k not in known]
    return view


def _suite_names(verdict: Mapping[str, Any]) -> list[str]:
    seen = list(verdict.get("suites") or {}) + list(verdict.get("findings") or {})
    return list(dict.fromkeys([*(verdict.get("required_suites") or []), *seen]))


def build_view(verdict: Mapping[str, Any], digest_ok: bool | None = None,
               history: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
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
