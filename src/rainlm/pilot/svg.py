"""Inline SVG strip plots for the pilot page: no JavaScript, nothing fetched.

:func:`strip_plot` draws one horizontal band per row (a method), one mark per value
(an answer) jittered inside its band, an optional dashed reference line (a limit, a
threshold) and an optional short tick per row (a measured percentile). Each chart has
a visible title, both axis labels, a legend, and a text alternative (``<title>``,
``<desc>``, ``aria-label``). Every string is escaped here (:func:`esc`); the caller
passes plain text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

__all__ = ["Row", "Style", "clean", "esc", "nice_ticks", "strip_plot", "text_width"]

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def clean(value: Any) -> str:
    """``value`` as text safe to show: line ends made ``\\n``, NUL and other control
    characters (and lone surrogates, which UTF-8 cannot encode) made U+FFFD."""
    s = "" if value is None else str(value)
    return _CONTROL.sub("\ufffd", s.replace("\r\n", "\n").replace("\r", "\n"))


def esc(value: Any) -> str:
    """:func:`clean`, then HTML-escaped (quotes too: safe in text and attributes)."""
    return escape(clean(value), quote=True)


def text_width(s: str, size: float = 12.0) -> float:
    """Rough rendered width in px of ``s`` at font size ``size`` (wide for CJK)."""
    return sum(size if ord(c) >= 0x2E80 else size * 0.6 for c in s)


def _fit(s: str, width: float, size: float = 12.0) -> str:
    """``s`` cut (with "…") to about ``width`` px."""
    s = " ".join(clean(s).split())
    if text_width(s, size) <= width:
        return s
    out = ""
    for c in s:
        if text_width(out + c + "…", size) > width:
            break
        out += c
    return out + "…"


def nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round tick values covering [lo, hi] (about ``count`` of them)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        hi = lo + 1 if math.isfinite(lo) else 1.0
        lo = lo if math.isfinite(lo) else 0.0
    raw = (hi - lo) / max(1, count - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * 0.999)
    start = math.floor(lo / step + 1e-9) * step
    ticks = [start]
    while ticks[-1] < hi - 1e-9 * step:
        ticks.append(start + len(ticks) * step)
    return [round(t, 10) for t in ticks]


def _tick_label(v: float) -> str:
    s = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


@dataclass(frozen=True)
class Style:
    """How a kind of mark looks: ``shape`` is ``circle``, ``ring`` or ``cross``."""

    label: str
    colour: str
    shape: str = "circle"


@dataclass
class Row:
    """One band of the plot: its label, its values ``(x, style key)`` and an optional
    tick at ``mark`` (e.g. that row's measured p95)."""

    label: str
    points: list[tuple[float, str]] = field(default_factory=list)
    mark: float | None = None


def _finite(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _mark(shape: str, x: float, y: float, colour: str, r: float = 4.0) -> str:
    if shape == "cross":
        return (f'<path d="M{x - r:.1f} {y - r:.1f}L{x + r:.1f} {y + r:.1f}M{x - r:.1f} '
                f'{y + r:.1f}L{x + r:.1f} {y - r:.1f}" stroke="{colour}" stroke-width="2" '
                'fill="none"/>')
    if shape == "ring":
        return (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="#fff" '
                f'stroke="{colour}" stroke-width="2"/>')
    return (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{colour}" '
            'fill-opacity="0.75" stroke="#fff" stroke-width="0.6"/>')


def strip_plot(*, chart_id: str, title: str, desc: str, x_label: str, y_label: str,
               rows: Sequence[Row], styles: Mapping[str, Style], empty: str,
               line: float | None = None, line_label: str = "", line_colour: str = "#b3261e",
               shade_right_of_line: bool = False, mark_label: str = "",
               width: int = 760) -> str:
    """One strip plot as an inline ``<svg>`` (plain-text arguments; escaped here).

    ``chart_id`` must be a safe identifier (it is used in ids). Values that are not
    finite numbers are left out (say so in ``desc``). A row with no values reads
    ``empty``; a chart with no rows has one such row.
    """
    size = 12.0
    rows = list(rows) or [Row(empty)]
    left = min(220.0, max(90.0, max(text_width(r.label, size) for r in rows) + 40.0))
    right, top, band = 24.0, 46.0, 58.0
    plot_w = width - left - right
    plot_h = band * len(rows)

    xs = [v for r in rows for v, _ in r.points if _finite(v) is not None]
    xs += [v for v in [line] + [r.mark for r in rows] if _finite(v) is not None]
    lo = min([0.0] + xs)
    hi = max([lo + 1.0] + xs)
    ticks = nice_ticks(lo, hi * 1.04 if hi > 0 else hi)
    x0, x1 = ticks[0], ticks[-1]

    def px(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * plot_w

    # legend entries: (svg sample, label)
    entries = [(_mark(s.shape, 0, 0, s.colour), s.label) for s in styles.values()]
    if line is not None and line_label:
        entries.append((f'<line x1="-9" y1="0" x2="9" y2="0" stroke="{line_colour}" '
                        'stroke-width="2" stroke-dasharray="5 3"/>', line_label))
    if mark_label and any(_finite(r.mark) is not None for r in rows):
        entries.append(('<line x1="0" y1="-8" x2="0" y2="8" stroke="#111" '
                        'stroke-width="3"/>', mark_label))
    legend, lx, ly = [], left, 0.0
    for sample, label in entries:
        w = 26 + text_width(label, size) + 18
        if lx + w > width - right and lx > left:
            lx, ly = left, ly + 20
        legend.append(f'<g transform="translate({lx + 9:.1f},{ly:.1f})">{sample}'
                      f'<text x="16" y="4">{esc(label)}</text></g>')
        lx += w
    axis_y = top + plot_h
    legend_y = axis_y + 62
    height = int(legend_y + ly + 22)

    out = [f'<svg id="{chart_id}" class="chart" role="img" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" aria-label="{esc(title)}" '
           f'aria-describedby="{chart_id}-desc" font-size="{size:g}" fill="#222">',
           f'<title>{esc(title)}</title><desc id="{chart_id}-desc">{esc(desc)}</desc>',
           f'<text x="{left:.1f}" y="22" font-size="15" font-weight="700">'
           f'{esc(_fit(title, width - left - right, 15))}</text>']
    # bands, grid, reference line
    for i in range(len(rows)):
        if i % 2 == 0:
            out.append(f'<rect x="{left:.1f}" y="{top + i * band:.1f}" width="{plot_w:.1f}" '
                       f'height="{band:.1f}" fill="#f5f6f8"/>')
    if shade_right_of_line and _finite(line) is not None and line < x1:
        out.append(f'<rect x="{px(line):.1f}" y="{top:.1f}" '
                   f'width="{left + plot_w - px(line):.1f}" height="{plot_h:.1f}" '
                   'fill="#fbe9e7" fill-opacity="0.7"/>')
    for t in ticks:
        x = px(t)
        out.append(f'<line x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{axis_y:.1f}" '
                   'stroke="#d9dbe0" stroke-width="1"/>'
                   f'<line x1="{x:.1f}" y1="{axis_y:.1f}" x2="{x:.1f}" y2="{axis_y + 5:.1f}" '
                   'stroke="#555"/>'
                   f'<text x="{x:.1f}" y="{axis_y + 18:.1f}" text-anchor="middle">'
                   f'{esc(_tick_label(t))}</text>')
    out.append(f'<line x1="{left:.1f}" y1="{axis_y:.1f}" x2="{left + plot_w:.1f}" '
               f'y2="{axis_y:.1f}" stroke="#555"/>'
               f'<line x1="{left:.1f}" y1="{top:.1f}" x2="{left:.1f}" y2="{axis_y:.1f}" '
               'stroke="#555"/>')
    # rows
    for i, row in enumerate(rows):
        mid = top + i * band + band / 2
        out.append(f'<text x="{left - 8:.1f}" y="{mid + 4:.1f}" text-anchor="end">'
                   f'<title>{esc(row.label)}</title>'
                   f'{esc(_fit(row.label, left - 40, size))}</text>')
        points = [(v, k) for v, k in row.points if _finite(v) is not None]
        if not points:
            out.append(f'<text x="{left + 10:.1f}" y="{mid + 4:.1f}" fill="#777" '
                       f'font-style="italic">{esc(empty)}</text>')
        for j, (v, key) in enumerate(points):
            style = styles.get(key) or next(iter(styles.values()), Style("", "#555"))
            jitter = ((j * 0.6180339887) % 1.0 - 0.5) * band * 0.62
            out.append(_mark(style.shape, px(v), mid + jitter, style.colour))
        if _finite(row.mark) is not None:
            out.append(f'<line x1="{px(row.mark):.1f}" y1="{mid - band * 0.42:.1f}" '
                       f'x2="{px(row.mark):.1f}" y2="{mid + band * 0.42:.1f}" stroke="#111" '
                       'stroke-width="3"/>')
    if _finite(line) is not None:
        out.append(f'<line x1="{px(line):.1f}" y1="{top - 6:.1f}" x2="{px(line):.1f}" '
                   f'y2="{axis_y:.1f}" stroke="{line_colour}" stroke-width="2" '
                   'stroke-dasharray="5 3"/>')
    # axis labels, legend
    out.append(f'<text x="{left + plot_w / 2:.1f}" y="{axis_y + 38:.1f}" text-anchor="middle" '
               f'font-weight="600">{esc(_fit(x_label, plot_w))}</text>'
               f'<text transform="translate(14 {top + plot_h / 2:.1f}) rotate(-90)" '
               f'text-anchor="middle" font-weight="600">{esc(_fit(y_label, plot_h))}</text>')
    out.append(f'<g transform="translate(0 {legend_y:.1f})">{"".join(legend)}</g>')
    out.append("</svg>")
    return "".join(out)
