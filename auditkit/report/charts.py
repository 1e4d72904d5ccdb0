"""Summary charts as small, deterministic SVG, written directly.

Four bar charts: daily volume, approval latency, DKIM status and findings by control.
Written here rather than drawn with matplotlib, which this module used to do: matplotlib
took ~0.5 s to import in every process that writes a pack (each cron run, each `report`),
and its charts with their ~900 SVG elements cost a pack ~0.1 s more to draw; for four bar
charts, a dependency that cost more than it gave.

Same data → same bytes: no generated ids or timestamps, coordinates rounded to two
decimals. Text stays text, so it is searchable in the PDF. Labels are escaped (they are
control ids, bucket names and numbers today, but nothing here relies on that). Returned as
`data:` URIs so the HTML and the PDF embed them without fetching anything.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any
from xml.sax.saxutils import escape, quoteattr

COLOURS = {
    "sent": "#4C72B0",
    "approved": "#55A868",
    "rejected": "#C44E52",
    "pass": "#55A868",
    "fail": "#C44E52",
    "unknown": "#8C8C8C",
    "open": "#C44E52",
    "waived": "#8C8C8C",
    "review": "#DD8452",
}
PALE = 0.45  # the sent bars' opacity, so the approved and rejected lines show through them
AXIS = "#333333"
MUTED = "#666666"
FONT = "DejaVu Sans, sans-serif"
FONT_SIZE = 8.0
WIDTH = 475.0  # points: the 6.6 in the report's text column is wide
# DejaVu Sans averages about this share of the font size per character: enough to place
# legends and margins, which is all it is used for.
CHAR_WIDTH = 0.6


def _num(value: float) -> str:
    """A coordinate: two decimals at most, no trailing zeros, so output is stable."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _text_width(text: str, size: float = FONT_SIZE) -> float:
    return len(text) * size * CHAR_WIDTH


LEGEND_GAP = 12  # between one legend entry and the next


def _legend_entry_width(label: str) -> float:
    """A legend entry: its 14 pt swatch, 4 pt of space, its label."""
    return 18 + _text_width(label)


class _Svg:
    """An SVG document built element by element, in points (1 user unit = 1 pt)."""

    def __init__(self, height: float, title: str) -> None:
        self.height = height
        self.parts: list[str] = []
        self.text(4, 12, title, size=FONT_SIZE + 1.5)

    def rect(self, x: float, y: float, w: float, h: float, fill: str, opacity: float = 1) -> None:
        if w <= 0 or h <= 0:
            return
        extra = f' fill-opacity="{_num(opacity)}"' if opacity != 1 else ""
        self.parts.append(
            f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(w)}" height="{_num(h)}" '
            f'fill="{fill}"{extra}/>'
        )

    def line(self, x1: float, y1: float, x2: float, y2: float, colour: str = AXIS) -> None:
        self.parts.append(
            f'<line x1="{_num(x1)}" y1="{_num(y1)}" x2="{_num(x2)}" y2="{_num(y2)}" '
            f'stroke="{colour}" stroke-width="0.8"/>'
        )

    def polyline(self, points: Sequence[tuple[float, float]], colour: str) -> None:
        coords = " ".join(f"{_num(x)},{_num(y)}" for x, y in points)
        self.parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.1"/>'
        )

    def text(
        self,
        x: float,
        y: float,
        text: str,
        *,
        anchor: str = "start",
        size: float = FONT_SIZE,
        colour: str = "#000000",
        rotate: float = 0,
    ) -> None:
        turn = f' transform="rotate({_num(rotate)} {_num(x)} {_num(y)})"' if rotate else ""
        self.parts.append(
            f'<text x="{_num(x)}" y="{_num(y)}" font-size="{_num(size)}" '
            f'text-anchor="{anchor}" fill="{colour}"{turn}>{escape(text)}</text>'
        )

    def legend(self, x: float, y: float, entries: Sequence[tuple[str, str, str]]) -> None:
        """Entries (label, colour, kind) in one row from (x, y), y the baseline; kind is
        "line", "bar" or "pale bar" (drawn as the daily chart draws its sent bars)."""
        for label, colour, kind in entries:
            if kind == "line":
                self.line(x, y - 3, x + 14, y - 3, colour)
            else:
                self.rect(x, y - 7, 14, 7, colour, opacity=PALE if kind == "pale bar" else 1)
            self.text(x + 18, y, label)
            x += _legend_entry_width(label) + LEGEND_GAP

    def data_uri(self) -> str:
        body = "".join(self.parts)
        document = (
            '<svg xmlns="http://www.w3.org/2000/svg" '
            f'width="{_num(WIDTH)}pt" height="{_num(self.height)}pt" '
            f'viewBox="0 0 {_num(WIDTH)} {_num(self.height)}" '
            f"font-family={quoteattr(FONT)}>{body}</svg>"
        )
        return "data:image/svg+xml;base64," + base64.b64encode(document.encode()).decode("ascii")


def _legend_width(entries: Sequence[tuple[str, str, str]]) -> float:
    widths = [_legend_entry_width(label) for label, _, _ in entries]
    return sum(widths) + LEGEND_GAP * (len(widths) - 1)


def integer_ticks(top: float, most: int = 6) -> list[int]:
    """Whole-number ticks from 0 up to `top`, at most `most` intervals, stepping 1, 2 or 5
    times a power of ten: the steps a reader counts in."""
    top = max(top, 1)
    step = 1
    while True:
        for multiple in (1, 2, 5):
            candidate = multiple * step
            if math.floor(top / candidate) <= most:
                return list(range(0, math.floor(top / candidate) * candidate + 1, candidate))
        step *= 10


class _Plot:
    """A plot area inside the chart, with a linear value scale from 0 to `top`."""

    def __init__(self, svg: _Svg, left: float, top_y: float, right: float, bottom_y: float) -> None:
        self.svg = svg
        self.left, self.right = left, right
        self.top_y, self.bottom_y = top_y, bottom_y

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom_y - self.top_y

    def value_axis_left(self, top: float, label: str | None) -> float:
        """Ticks on the left edge; returns the scale (points per unit)."""
        ticks = integer_ticks(top)
        scale = self.height / top
        self.svg.line(self.left, self.top_y, self.left, self.bottom_y)
        for tick in ticks:
            y = self.bottom_y - tick * scale
            self.svg.line(self.left - 3, y, self.left, y)
            self.svg.text(self.left - 5, y + 3, f"{tick:,}", anchor="end")
        if label:
            widest = max(_text_width(f"{t:,}") for t in ticks)
            x = self.left - widest - 10
            self.svg.text(x, (self.top_y + self.bottom_y) / 2, label, anchor="middle", rotate=-90)
        return scale

    def value_axis_bottom(self, top: float, label: str | None) -> float:
        """Ticks on the bottom edge; returns the scale (points per unit)."""
        ticks = integer_ticks(top)
        scale = self.width / top
        self.svg.line(self.left, self.bottom_y, self.right, self.bottom_y)
        for tick in ticks:
            x = self.left + tick * scale
            self.svg.line(x, self.bottom_y, x, self.bottom_y + 3)
            self.svg.text(x, self.bottom_y + 12, f"{tick:,}", anchor="middle")
        if label:
            self.svg.text((self.left + self.right) / 2, self.bottom_y + 24, label, anchor="middle")
        return scale

    def empty(self, text: str) -> None:
        self.svg.text(
            (self.left + self.right) / 2,
            (self.top_y + self.bottom_y) / 2,
            text,
            anchor="middle",
            colour=MUTED,
        )


def _day_labels(days: Sequence[date]) -> list[int]:
    """Indexes of the days to label: every day for a week or less, else the 1st, 8th, 15th
    and 22nd of a month for a month or less, else the 1st and 15th."""
    if len(days) <= 8:
        return list(range(len(days)))
    marks = (1, 8, 15, 22) if len(days) <= 31 else (1, 15)
    return [i for i, d in enumerate(days) if d.day in marks]


def daily_volume_chart(daily: Sequence[Mapping[str, Any]]) -> str:
    svg = _Svg(158, "Daily outbound volume (UTC days, by creation date)")
    plot = _Plot(svg, 48, 24, WIDTH - 10, 116)
    if not daily:
        plot.empty("no outbound messages in scope")
        return svg.data_uri()
    peak = max(max(d["sent"], d["approved"], d["rejected"]) for d in daily)
    top = max(1, peak) * 1.3
    scale = plot.value_axis_left(top, "messages per day")
    slot = plot.width / len(daily)
    for i, d in enumerate(daily):
        height = d["sent"] * scale
        x = plot.left + i * slot + slot * 0.05
        svg.rect(x, plot.bottom_y - height, slot * 0.9, height, COLOURS["sent"], opacity=PALE)
    for key in ("approved", "rejected"):
        # A step that changes between days: each day's value spans its own slot.
        points: list[tuple[float, float]] = []
        for i, d in enumerate(daily):
            y = plot.bottom_y - d[key] * scale
            points += [(plot.left + i * slot, y), (plot.left + (i + 1) * slot, y)]
        svg.polyline(points, COLOURS[key])
    svg.line(plot.left, plot.bottom_y, plot.right, plot.bottom_y)
    days = [d["day"] for d in daily]
    for i in _day_labels(days):
        x = plot.left + (i + 0.5) * slot
        svg.line(x, plot.bottom_y, x, plot.bottom_y + 3)
        svg.text(x + 3, plot.bottom_y + 12, days[i].isoformat(), anchor="end", rotate=-20)
    entries = [
        ("approved", COLOURS["approved"], "line"),
        ("rejected", COLOURS["rejected"], "line"),
        ("sent (delivered or bounced)", COLOURS["sent"], "pale bar"),
    ]
    svg.legend(plot.right - _legend_width(entries), plot.top_y + 10, entries)
    return svg.data_uri()


def latency_chart(latency: Mapping[str, Any]) -> str:
    svg = _Svg(158, "Approval latency (created → approved)")
    plot = _Plot(svg, 48, 24, WIDTH - 10, 134)
    buckets = latency["buckets"]
    if not any(b["count"] for b in buckets):
        plot.empty("no approved messages with both timestamps")
        return svg.data_uri()
    top = max(b["count"] for b in buckets) * 1.15
    scale = plot.value_axis_left(top, "approved messages")
    slot = plot.width / len(buckets)
    svg.line(plot.left, plot.bottom_y, plot.right, plot.bottom_y)
    for i, b in enumerate(buckets):
        height = b["count"] * scale
        centre = plot.left + (i + 0.5) * slot
        svg.rect(
            centre - slot * 0.4, plot.bottom_y - height, slot * 0.8, height, COLOURS["approved"]
        )
        svg.text(centre, plot.bottom_y - height - 3, f"{b['count']:,}", anchor="middle", size=7)
        svg.text(centre, plot.bottom_y + 12, b["label"], anchor="middle")
    return svg.data_uri()


def dkim_chart(counts: Mapping[str, int]) -> str:
    svg = _Svg(115, "DKIM status of outbound messages")
    plot = _Plot(svg, 14, 24, WIDTH - 10, 64)
    values = [
        ("pass", counts["dkim_pass"]),
        ("fail", counts["dkim_fail"]),
        ("unknown", counts["dkim_unknown"]),
    ]
    total = sum(v for _, v in values)
    if total == 0:
        plot.empty("no outbound messages in scope")
        return svg.data_uri()
    scale = plot.value_axis_bottom(total, None)
    left = plot.left
    for key, v in values:
        svg.rect(left, plot.top_y, v * scale, plot.height, COLOURS[key])
        left += v * scale
    entries = [(f"{key}: {v:,} ({100 * v / total:.1f}%)", COLOURS[key], "bar") for key, v in values]
    svg.legend((WIDTH - _legend_width(entries)) / 2, plot.bottom_y + 34, entries)
    return svg.data_uri()


def findings_chart(controls: Sequence[Mapping[str, Any]]) -> str:
    rows = [c for c in controls if c["open"] or c["waived"] or c["review"]]
    height = max(115.0, 20.0 * len(rows) + 58)
    svg = _Svg(height, "Findings by control")
    plot = _Plot(svg, 58, 24, WIDTH - 80, height - 34)
    if not rows:
        plot.empty("no findings")
        return svg.data_uri()
    states = ("open", "review", "waived")
    scale = plot.value_axis_bottom(max(sum(c[s] for s in states) for c in rows), "findings")
    band = plot.height / len(rows)
    svg.line(plot.left, plot.top_y, plot.left, plot.bottom_y)
    for i, c in enumerate(rows):
        y = plot.top_y + i * band
        svg.text(plot.left - 5, y + band / 2 + 3, str(c["id"]), anchor="end")
        left = plot.left
        for state in states:
            svg.rect(left, y + band * 0.1, c[state] * scale, band * 0.8, COLOURS[state])
            left += c[state] * scale
    for i, state in enumerate(states):
        y = plot.top_y + 8 + i * 13
        svg.rect(plot.right + 10, y - 7, 14, 7, COLOURS[state])
        svg.text(plot.right + 28, y, state)
    return svg.data_uri()


def render_charts(context: Mapping[str, Any]) -> dict[str, str]:
    return {
        "daily": daily_volume_chart(context["daily"]),
        "latency": latency_chart(context["latency"]),
        "dkim": dkim_chart(context["counts"]),
        "findings": findings_chart(context["controls"]),
    }
