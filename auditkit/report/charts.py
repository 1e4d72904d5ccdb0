"""Summary charts as deterministic SVG (matplotlib, object API, no pyplot state).

Same data → same bytes: a fixed `svg.hashsalt` for element ids, no Date metadata, text kept as
text (`svg.fonttype = none`) so it stays searchable in the PDF. Returned as `data:` URIs so
the HTML and the PDF embed them without fetching anything.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib
from matplotlib.dates import DateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

SVG_RC: dict[RcKeyType, Any] = {
    "svg.hashsalt": "auditkit-report",
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
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


def _to_data_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    with matplotlib.rc_context(SVG_RC):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(
    width: float = 6.6,
    height: float = 2.2,
    left: float = 0.09,
    bottom: float = 0.24,
    right: float = 0.98,
) -> Figure:
    # Fixed margins instead of a layout engine: constrained layout costs more than drawing.
    with matplotlib.rc_context(SVG_RC):
        fig = Figure(figsize=(width, height))
        fig.subplots_adjust(left=left, right=right, bottom=bottom, top=0.88)
        return fig


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666666")
    ax.set_xticks([])
    ax.set_yticks([])


def daily_volume_chart(daily: Sequence[Mapping[str, Any]]) -> str:
    with matplotlib.rc_context(SVG_RC):
        fig = _figure()
        ax = fig.add_subplot()
        if not daily:
            _empty(ax, "no outbound messages in scope")
        else:
            days = [d["day"] for d in daily]
            ax.bar(
                days,
                [d["sent"] for d in daily],
                width=0.9,
                color=COLOURS["sent"],
                alpha=0.45,
                label="sent (delivered or bounced)",
            )
            for key in ("approved", "rejected"):
                ax.step(
                    days,
                    [d[key] for d in daily],
                    where="mid",
                    label=key,
                    color=COLOURS[key],
                    linewidth=1.1,
                )
            peak = max(max(d["sent"], d["approved"], d["rejected"]) for d in daily)
            ax.set_ylim(0, max(1, peak) * 1.3)
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel("messages per day")
            ax.legend(loc="upper right", frameon=False, ncols=3)
            ax.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d"))
            ax.tick_params(axis="x", labelrotation=20)
        ax.set_title("Daily outbound volume (UTC days, by creation date)", loc="left")
        return _to_data_uri(fig)


def latency_chart(latency: Mapping[str, Any]) -> str:
    with matplotlib.rc_context(SVG_RC):
        fig = _figure()
        ax = fig.add_subplot()
        buckets = latency["buckets"]
        if not any(b["count"] for b in buckets):
            _empty(ax, "no approved messages with both timestamps")
        else:
            ax.bar(
                [b["label"] for b in buckets],
                [b["count"] for b in buckets],
                color=COLOURS["approved"],
            )
            ax.set_ylabel("approved messages")
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylim(0, max(b["count"] for b in buckets) * 1.15)
            for i, b in enumerate(buckets):
                ax.annotate(
                    f"{b['count']:,}", (i, b["count"]), ha="center", va="bottom", fontsize=7
                )
        ax.set_title("Approval latency (created → approved)", loc="left")
        return _to_data_uri(fig)


def dkim_chart(counts: Mapping[str, int]) -> str:
    with matplotlib.rc_context(SVG_RC):
        fig = _figure(height=1.6, left=0.03, bottom=0.42)
        ax = fig.add_subplot()
        values = [
            ("pass", counts["dkim_pass"]),
            ("fail", counts["dkim_fail"]),
            ("unknown", counts["dkim_unknown"]),
        ]
        total = sum(v for _, v in values)
        if total == 0:
            _empty(ax, "no outbound messages in scope")
        else:
            left = 0
            for key, v in values:
                ax.barh(
                    [0],
                    [v],
                    left=left,
                    color=COLOURS[key],
                    label=f"{key}: {v:,} ({100 * v / total:.1f}%)",
                )
                left += v
            ax.set_yticks([])
            ax.set_xlim(0, total)
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), frameon=False, ncols=3)
        ax.set_title("DKIM status of outbound messages", loc="left")
        return _to_data_uri(fig)


def findings_chart(controls: Sequence[Mapping[str, Any]]) -> str:
    with matplotlib.rc_context(SVG_RC):
        rows = [c for c in controls if c["open"] or c["waived"] or c["review"]]
        height = max(1.6, 0.28 * len(rows) + 0.8)
        fig = _figure(height=height, left=0.12, bottom=0.55 / height, right=0.86)
        ax = fig.add_subplot()
        if not rows:
            _empty(ax, "no findings")
        else:
            labels = [c["id"] for c in rows][::-1]
            left = [0] * len(rows)
            for state in ("open", "review", "waived"):
                vals = [c[state] for c in rows][::-1]
                ax.barh(labels, vals, left=left, color=COLOURS[state], label=state)
                left = [a + b for a, b in zip(left, vals, strict=True)]
            ax.set_xlabel("findings")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        ax.set_title("Findings by control", loc="left")
        return _to_data_uri(fig)


def render_charts(context: Mapping[str, Any]) -> dict[str, str]:
    return {
        "daily": daily_volume_chart(context["daily"]),
        "latency": latency_chart(context["latency"]),
        "dkim": dkim_chart(context["counts"]),
        "findings": findings_chart(context["controls"]),
    }
