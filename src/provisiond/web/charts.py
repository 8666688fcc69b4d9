"""Charts as server-rendered SVG: axes with labelled ticks, the values written on the marks,
a legend, and ``role="img"`` with a title and a description (each chart's page also shows
the same numbers in a table). No script, no inline style (the pages' CSP): presentation
attributes only. Pure: numbers in, markup out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

#: Series colours (Bootstrap's): dark enough on white for marks beside their text labels.
COLOURS = {
    "registered": "#6c757d",
    "provisioned": "#0d6efd",
    "claimed": "#198754",
    "failed": "#dc3545",
    "expired": "#b35900",
}
TEXT = "#212529"
GRID = "#dee2e6"
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


@dataclass(frozen=True, slots=True)
class Series:
    name: str  # also its colour's key
    label: str
    values: Sequence[int]


def nice_ticks(top: float, count: int = 5) -> list[int]:
    """Whole-number ticks from 0 to at least ``top``, on a 1-2-5 step."""
    if top <= 0:
        return [0, 1]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(int(step), 1)
    last = math.ceil(top / step) * step
    return list(range(0, last + 1, step))


def _number(n: int) -> str:
    return f"{n:,}"


def _open(chart_id: str, title: str, desc: str, width: int, height: int) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'class="chart w-100" role="img" id="{escape(chart_id)}" '
        f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" {FONT}>',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(desc)}</desc>',
    ]


def _legend(series: Sequence[Series], x: float, y: float) -> list[str]:
    out = ['<g class="legend">']
    for s in series:
        out.append(
            f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" '
            f'fill="{COLOURS[s.name]}"/>'
            f'<text x="{x + 14:.1f}" y="{y:.1f}" fill="{TEXT}">{escape(s.label)}</text>'
        )
        x += 24 + 7 * len(s.label)
    out.append("</g>")
    return out


def bar_chart(
    chart_id: str,
    title: str,
    desc: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    width: int = 640,
    notes: Sequence[str] | None = None,
    colour_keys: Sequence[str] | None = None,
) -> Markup:
    """Horizontal bars: one row per category, one bar per series in it, each bar's value
    at its end (and ``notes[i]`` after the first bar's value: a rate), an x axis of counts
    below, the legend above. With ``colour_keys`` (one series), each category's bar has its
    own colour and the legend names the categories."""
    label_w = min(220, 16 + 7 * max((len(c) for c in categories), default=4))
    bar_h, gap = 16, 12
    row_h = bar_h * len(series) + gap
    top, left, right = 30, label_w, width - 90
    height = top + row_h * max(len(categories), 1) + 36
    peak = max((v for s in series for v in s.values), default=0)
    ticks = nice_ticks(peak)
    scale = (right - left) / ticks[-1]
    out = _open(chart_id, title, desc, width, height)
    if colour_keys:
        keyed = [Series(k, c, []) for k, c in zip(colour_keys, categories, strict=True)]
        out += _legend(keyed, left, 16)
    else:
        out += _legend(series, left, 16)
    axis_y = top + row_h * max(len(categories), 1)
    for t in ticks:
        x = left + t * scale
        out.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{axis_y}" stroke="{GRID}"/>'
            f'<text x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle" fill="{TEXT}">'
            f"{_number(t)}</text>"
        )
    out.append(
        f'<line x1="{left}" y1="{axis_y}" x2="{right}" y2="{axis_y}" stroke="{TEXT}"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{axis_y}" stroke="{TEXT}"/>'
        f'<text x="{(left + right) / 2:.1f}" y="{axis_y + 32}" text-anchor="middle" '
        f'fill="{TEXT}">devices</text>'
    )
    for i, category in enumerate(categories):
        y0 = top + i * row_h + gap / 2
        out.append(
            f'<text x="{left - 6}" y="{y0 + bar_h * len(series) / 2 + 4:.1f}" '
            f'text-anchor="end" fill="{TEXT}">{escape(category)}</text>'
        )
        for j, s in enumerate(series):
            value = s.values[i]
            y = y0 + j * bar_h
            w = value * scale
            note = f" ({notes[i]})" if notes and j == 0 and notes[i] else ""
            fill = COLOURS[colour_keys[i] if colour_keys else s.name]
            out.append(
                f'<rect x="{left}" y="{y:.1f}" width="{w:.1f}" height="{bar_h - 2}" '
                f'fill="{fill}"><title>{escape(s.label)}: {_number(value)}</title>'
                f"</rect>"
                f'<text x="{left + w + 4:.1f}" y="{y + bar_h - 5:.1f}" fill="{TEXT}">'
                f"{_number(value)}{escape(note)}</text>"
            )
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every text in it is escaped above


def line_chart(
    chart_id: str,
    title: str,
    desc: str,
    days: Sequence[str],
    series: Sequence[Series],
    *,
    width: int = 640,
    height: int = 260,
) -> Markup:
    """Lines over days (YYYY-MM-DD): a y axis of counts, an x axis of dates, a marker and
    its value for each day when they fit, the legend above."""
    left, right, top, bottom = 56, width - 16, 30, height - 40
    peak = max((v for s in series for v in s.values), default=0)
    ticks = nice_ticks(peak)
    n = len(days)
    step_x = (right - left) / max(n - 1, 1)

    def x(i: int) -> float:
        return left + i * step_x

    def y(v: int) -> float:
        return bottom - v * (bottom - top) / ticks[-1]

    out = _open(chart_id, title, desc, width, height)
    out += _legend(series, left, 16)
    for t in ticks:
        out.append(
            f'<line x1="{left}" y1="{y(t):.1f}" x2="{right}" y2="{y(t):.1f}" stroke="{GRID}"/>'
            f'<text x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end" fill="{TEXT}">'
            f"{_number(t)}</text>"
        )
    every = max(1, math.ceil(n / 7))
    for i in range(0, n, every):
        out.append(
            f'<line x1="{x(i):.1f}" y1="{bottom}" x2="{x(i):.1f}" y2="{bottom + 4}" '
            f'stroke="{TEXT}"/><text x="{x(i):.1f}" y="{bottom + 18}" text-anchor="middle" '
            f'fill="{TEXT}">{escape(days[i][5:])}</text>'
        )
    out.append(
        f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="{TEXT}"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="{TEXT}"/>'
        f'<text x="{(left + right) / 2:.1f}" y="{height - 4}" text-anchor="middle" '
        f'fill="{TEXT}">day of registration (UTC)</text>'
    )
    dashes = {"claimed": ' stroke-dasharray="6 3"'}
    for s in series:
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(s.values))
        out.append(
            f'<polyline fill="none" stroke="{COLOURS[s.name]}" stroke-width="2"'
            f'{dashes.get(s.name, "")} points="{points}"/>'
        )
        if n <= 31:
            for i, v in enumerate(s.values):
                out.append(
                    f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" '
                    f'fill="{COLOURS[s.name]}"><title>{escape(days[i])}, '
                    f"{escape(s.label)}: {_number(v)}</title></circle>"
                )
    if n <= 14:  # room for the values themselves: the top series'
        s = series[0]
        for i, v in enumerate(s.values):
            out.append(
                f'<text x="{x(i):.1f}" y="{y(v) - 6:.1f}" text-anchor="middle" '
                f'fill="{TEXT}">{_number(v)}</text>'
            )
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every text in it is escaped above
