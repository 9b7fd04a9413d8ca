"""The report's chart kit: inline SVG bars, a heatmap, line and scatter plots on linear or log
axes, and a histogram, written by hand (see docs/design.md for why).

No JavaScript or fonts: the report opens offline. Each function takes plain numbers and returns
markup; an empty input gives an empty chart, so a missing finding never breaks the report.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from html import escape
from typing import Any

from markupsafe import Markup

from releasetest.verdict.formatting import fmt, num

#: Characters of a bar label drawn in full (7 px each at most); a longer one is cut, whole in its tooltip.
MAX_LABEL = 40
#: Points drawn in the latency timeline; longer series are thinned evenly.
MAX_TIMELINE_POINTS = 2000

PASS, FAIL, MUTED, ACCENT, GRID = "#1a7f37", "#cf222e", "#6e7781", "#0969da", "#d0d7de"
#: One colour per class or series, distinguishable in print and for common colour blindness.
SERIES = ("#0969da", "#bc4c00", "#8250df", "#1a7f37", "#cf222e", "#6e7781")


def nice_max(v: float) -> float:
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
    scale_max = 1.0 if 0 < top_value <= 1 and min(values) >= 0 else nice_max(top_value * 1.05)
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
    totals = [sum(num(v) or 0.0 for v in r) for r in matrix]
    body = [_text(left + cell * n / 2, 14, "predicted", "middle", "axis"),
            f'<text x="14" y="{top + cell * n / 2:.1f}" transform="rotate(-90 14 {top + cell * n / 2:.1f})" '
            f'text-anchor="middle" class="axis">true</text>']
    for j, lab in enumerate(labels):
        body.append(_text(left + cell * j + cell / 2, top - 8, str(lab), "middle"))
        body.append(_text(left - 8, top + cell * j + cell / 2 + 5, str(lab), "end"))
    for i, r in enumerate(matrix):
        for j, v in enumerate(r):
            share = (num(v) or 0.0) / totals[i] if totals[i] else 0.0
            base = "26,127,55" if i == j else "207,34,46"
            cls = "cell-dark" if share > 0.55 else "cell"
            cx, cy = left + cell * j + cell / 2 - 1, top + cell * i + cell / 2
            body.append(f'<rect x="{left + cell * j}" y="{top + cell * i}" width="{cell - 2}" height="{cell - 2}" '
                        f'rx="3" fill="rgba({base},{0.08 + 0.8 * share:.2f})"/>')
            body.append(_text(cx, cy, fmt(v), "middle", cls))
            body.append(_text(cx, cy + 15, f"{share:.1%}", "middle", cls + " rate"))
    return _svg(width, height, body, label)


def points(raw: Any) -> list[tuple[float, float]]:
    """``[[x, y], ...]`` with finite numbers only; anything else is dropped."""
    pts = ((num(p[0]), num(p[1])) for p in raw if isinstance(p, (list, tuple)) and len(p) >= 2) \
        if isinstance(raw, list) else ()
    return [(a, b) for a, b in pts if a is not None and b is not None]


def thin(pts: list[tuple[float, float]], limit: int) -> list[tuple[float, float]]:
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
    high = nice_max(max(values) * 1.02)
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int(max(0.0, v) / high * bins))] += 1
    width, left, right, top, bottom = 480, 58, 26, 14, 48
    pw, ph = width - left - right, 280 - top - bottom
    peak = nice_max(max(counts))
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


def timeline(raw: Any, label: str, bound: tuple[str, float] | None = None) -> Markup:
    """Latency of each request over the run, scaled to the data: the SLO line is drawn when it lies
    in that range and stated on the chart when it is above it."""
    pts = thin(points(raw), MAX_TIMELINE_POINTS)
    if not pts:
        return Markup("")
    top_v = nice_max(max(v for _, v in pts) * 1.05)
    note = None
    if bound is not None and bound[1] > top_v:
        note = f"{bound[0]} {fmt(bound[1])} ms: above the chart"
    xa = Axis("time since start (s)", 0.0, nice_max(max(t for t, _ in pts)))
    ya = Axis("latency (ms)", 0.0, top_v)
    return xy_plot([Series("latency", pts, lines=False)], xa, ya, label,
                   hline=(bound[0], bound[1]) if bound else None, note=note)


#: Percentile levels of the HDR curve, with their share of requests above (1 - q) for the log axis.
HDR_LEVELS = (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p99_9", 99.9))


def percentile_curve(latency: Any, label: str, bound: tuple[str, float] | None = None) -> Markup:
    """HDR-style latency by percentile: x is 1/(1 - q) on a log axis, so the tail gets the room."""
    if not isinstance(latency, dict):
        return Markup("")
    pts = [(100.0 / (100.0 - q), v) for key, q in HDR_LEVELS if (v := num(latency.get(key))) is not None]
    if len(pts) < 2:
        return Markup("")
    top_v = nice_max(max(v for _, v in pts) * 1.05)
    ticks = tuple((100.0 / (100.0 - q), f"{q:g}%") for _, q in HDR_LEVELS)
    xa = Axis("percentile (log scale of 1 / (1 - q))", 2.0, 1000.0, log=True, ticks=ticks)
    ya = Axis("latency (ms)", 0.0, top_v)
    note = f"{bound[0]} {fmt(bound[1])} ms: above the chart" if bound and bound[1] > top_v else None
    return xy_plot([Series("latency", pts)], xa, ya, label, hline=bound, note=note)


def roc_plots(curves: Any) -> dict[str, Markup]:
    """ROC and precision-recall curves per class, as the acceptance suite records them."""
    if not isinstance(curves, dict):
        return {}
    roc = [Series(f"class {c}", points(p)) for c, p in (curves.get("roc") or {}).items()]
    pr = [Series(f"class {c}", points(p)) for c, p in (curves.get("pr") or {}).items()]
    return {k: v for k, v in {
        "roc": xy_plot(roc, Axis("false positive rate", 0, 1), Axis("true positive rate", 0, 1),
                       "ROC curves, one vs rest", guide=((0, 0), (1, 1))),
        "pr": xy_plot(pr, Axis("recall", 0, 1), Axis("precision", 0, 1),
                      "precision-recall curves, one vs rest"),
    }.items() if v}


def regression_plots(predicted_vs_actual: Any, residuals: Any) -> dict[str, Markup]:
    """Predicted against actual (with y = x) and residuals against predicted (with zero)."""
    out: dict[str, Markup] = {}
    pva = thin(points(predicted_vs_actual), MAX_TIMELINE_POINTS)
    if pva:
        lo = min(min(a, p) for a, p in pva)
        hi = max(max(a, p) for a, p in pva)
        span = (hi - lo) * 0.05 or 1.0
        axis_lo, axis_hi = lo - span, hi + span
        out["pva"] = xy_plot([Series("rows", pva, lines=False)], Axis("actual", axis_lo, axis_hi),
                             Axis("predicted", axis_lo, axis_hi), "predicted vs actual",
                             guide=((axis_lo, axis_lo), (axis_hi, axis_hi)))
    res = thin(points(residuals), MAX_TIMELINE_POINTS)
    if res:
        px = [p for p, _ in res]
        r_abs = max(abs(r) for _, r in res) * 1.05 or 1.0
        xspan = (max(px) - min(px)) * 0.05 or 1.0
        out["residuals"] = xy_plot([Series("rows", res, lines=False)],
                                   Axis("predicted", min(px) - xspan, max(px) + xspan),
                                   Axis("residual (actual − predicted)", -r_abs, r_abs), "residuals",
                                   guide=((min(px) - xspan, 0.0), (max(px) + xspan, 0.0)))
    return out
