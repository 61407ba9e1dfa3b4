"""Server-rendered SVG bar charts for the console: pure functions of the data, no JavaScript.

``bar_chart`` draws one bar per (label, value) with a y-axis whose top is a "nice" number
(1, 2 or 5 × 10^k, :func:`nice_ceiling`) and ``TICKS`` even gridlines. Values are ints (minor
units, counts); ``value_label`` turns a tick's value into text (money is formatted by the
caller). Every text is XML-escaped. No data, or only zeros, draws the frame and "No data yet".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

TICKS = 5
WIDTH_PX = 640
HEIGHT_PX = 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 72, 8, 12, 36


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 × 10^k that is ≥ ``value`` and a multiple of TICKS (0 → TICKS), so ticks are whole numbers."""
    if value <= 0:
        return TICKS
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            candidate = factor * magnitude
            if candidate >= value and candidate % TICKS == 0:
                return candidate
        magnitude *= 10


def axis_ticks(top: int) -> list[int]:
    """The gridline values from 0 to ``top`` (TICKS + 1 of them, integer steps)."""
    return [top * i // TICKS for i in range(TICKS + 1)]


def bar_chart(data: Sequence[tuple[str, int]], *, title: str, value_label: Callable[[int], str] = str,
              width: int = WIDTH_PX, height: int = HEIGHT_PX, label_every: int = 1) -> str:
    """An accessible inline SVG (role=img, <title>) of non-negative bars."""
    if any(value < 0 for _label, value in data):
        raise ValueError("bar values must not be negative")
    plot_w, plot_h = width - _LEFT - _RIGHT, height - _TOP - _BOTTOM
    top = nice_ceiling(max((v for _l, v in data), default=0))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}"><title>{escape(title)}</title>']
    for tick in axis_ticks(top):
        y = _TOP + plot_h - plot_h * tick // top
        parts.append(f'<line class="grid" x1="{_LEFT}" x2="{width - _RIGHT}" y1="{y}" y2="{y}"/>'
                     f'<text class="axis" x="{_LEFT - 6}" y="{y + 4}" text-anchor="end">{escape(value_label(tick))}</text>')
    if not data or all(v == 0 for _l, v in data):
        parts.append(f'<text class="empty" x="{_LEFT + plot_w // 2}" y="{_TOP + plot_h // 2}" '
                     'text-anchor="middle">No data yet</text>')
    slot = plot_w / max(len(data), 1)
    for index, (label, value) in enumerate(data):
        bar_h = plot_h * value // top
        x = _LEFT + index * slot + slot * 0.15
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{_TOP + plot_h - bar_h}" width="{slot * 0.7:.1f}" '
                     f'height="{bar_h}"><title>{escape(label)}: {escape(value_label(value))}</title></rect>')
        if index % max(label_every, 1) == 0:
            parts.append(f'<text class="label" x="{x + slot * 0.35:.1f}" y="{height - _BOTTOM + 16}" '
                         f'text-anchor="middle">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)
