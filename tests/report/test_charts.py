"""The summary charts: well-formed SVG, the data drawn to scale, text kept as escaped text,
the same bytes for the same data, and a plain note where there is nothing to draw."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from datetime import date, timedelta
from typing import Any

import pytest

from auditkit.report import charts

SVG = "{http://www.w3.org/2000/svg}"


def parse(uri: str) -> ET.Element:
    prefix = "data:image/svg+xml;base64,"
    assert uri.startswith(prefix)
    return ET.fromstring(base64.b64decode(uri[len(prefix) :]))


def texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def rects(root: ET.Element, fill: str) -> list[dict[str, float]]:
    return [
        {k: float(r.get(k, "0")) for k in ("x", "y", "width", "height")}
        for r in root.iter(f"{SVG}rect")
        if r.get("fill") == fill
    ]


def quarter(busy: dict[str, dict[str, int]] | None = None) -> list[dict[str, Any]]:
    """Every day of 2026Q3 as the report context has it, quiet but for the `busy` days."""
    first = date(2026, 7, 1)
    days = [first + timedelta(days=i) for i in range(92)]
    rows = [{"day": d, "sent": 0, "approved": 0, "rejected": 0} for d in days]
    for iso, values in (busy or {}).items():
        rows[(date.fromisoformat(iso) - first).days].update(values)
    return rows


@pytest.mark.parametrize(
    ("top", "ticks"),
    [
        (0, [0, 1]),
        (1, [0, 1]),
        (6.5, [0, 1, 2, 3, 4, 5, 6]),
        (7, [0, 2, 4, 6]),
        (48.1, [0, 10, 20, 30, 40]),
        (1223.6, [0, 200, 400, 600, 800, 1000, 1200]),
        (2903, [0, 500, 1000, 1500, 2000, 2500]),
    ],
)
def test_ticks_are_whole_numbers_in_steps_a_reader_counts_in(top: float, ticks: list[int]) -> None:
    assert charts.integer_ticks(top) == ticks


def test_daily_bars_are_to_scale_and_days_labelled_on_the_1st_and_15th() -> None:
    daily = quarter({"2026-07-02": {"sent": 10, "approved": 10}, "2026-08-03": {"sent": 40}})
    root = parse(charts.daily_volume_chart(daily))
    # The bars stand on the axis; the legend's swatch of the same colour does not.
    sent = rects(root, charts.COLOURS["sent"])
    axis = max(r["y"] + r["height"] for r in sent)
    bars = sorted(
        (r for r in sent if abs(r["y"] + r["height"] - axis) < 0.05), key=lambda r: r["x"]
    )
    assert len(bars) == 2  # a day with nothing sent draws no bar
    assert bars[1]["height"] == pytest.approx(4 * bars[0]["height"], rel=0.01)
    labels = [t for t in texts(root) if t.startswith("2026-")]
    assert labels == [
        "2026-07-01",
        "2026-07-15",
        "2026-08-01",
        "2026-08-15",
        "2026-09-01",
        "2026-09-15",
    ]
    assert "Daily outbound volume (UTC days, by creation date)" in texts(root)
    assert "messages per day" in texts(root)
    # The approved and rejected series are each one line across every day.
    assert len(list(root.iter(f"{SVG}polyline"))) == 2


def test_short_spans_label_more_days() -> None:
    week = quarter()[:7]
    labels = [t for t in texts(parse(charts.daily_volume_chart(week))) if t.startswith("2026-")]
    assert len(labels) == 7


def test_latency_bars_carry_their_counts() -> None:
    buckets = [{"label": "< 1 min", "count": 3}, {"label": "1-5 min", "count": 1200}]
    root = parse(charts.latency_chart({"buckets": buckets}))
    assert {"< 1 min", "1-5 min", "3", "1,200", "approved messages"} <= set(texts(root))
    small, big = sorted(rects(root, charts.COLOURS["approved"]), key=lambda r: r["height"])
    assert big["height"] == pytest.approx(400 * small["height"], rel=0.01)


def test_dkim_bar_splits_the_width_by_status() -> None:
    root = parse(charts.dkim_chart({"dkim_pass": 3, "dkim_fail": 1, "dkim_unknown": 0}))
    (passed,) = rects(root, charts.COLOURS["pass"])[:1]
    failed = rects(root, charts.COLOURS["fail"])[0]
    assert passed["width"] == pytest.approx(3 * failed["width"], rel=0.01)
    assert {"pass: 3 (75.0%)", "fail: 1 (25.0%)", "unknown: 0 (0.0%)"} <= set(texts(root))


def test_findings_rows_stack_their_states_and_labels_stay_text() -> None:
    controls = [
        {"id": "CS-001", "open": 2, "review": 1, "waived": 0},
        {"id": "OK-001", "open": 0, "review": 0, "waived": 0},  # nothing to show: no row
        {"id": "<script>alert(1)</script>", "open": 0, "review": 0, "waived": 3},
    ]
    uri = charts.findings_chart(controls)
    raw = base64.b64decode(uri.split(",", 1)[1]).decode()
    assert "<script>" not in raw and "&lt;script&gt;" in raw
    root = parse(uri)
    assert "<script>alert(1)</script>" in texts(root) and "OK-001" not in texts(root)
    open_bar = rects(root, charts.COLOURS["open"])[0]
    review_bar = rects(root, charts.COLOURS["review"])[0]
    assert review_bar["x"] == pytest.approx(open_bar["x"] + open_bar["width"])
    assert open_bar["width"] == pytest.approx(2 * review_bar["width"], rel=0.01)


@pytest.mark.parametrize(
    ("chart", "data", "note"),
    [
        (charts.daily_volume_chart, [], "no outbound messages in scope"),
        (
            charts.latency_chart,
            {"buckets": [{"label": "< 1 min", "count": 0}]},
            "no approved messages with both timestamps",
        ),
        (
            charts.dkim_chart,
            {"dkim_pass": 0, "dkim_fail": 0, "dkim_unknown": 0},
            "no outbound messages in scope",
        ),
        (charts.findings_chart, [], "no findings"),
    ],
)
def test_nothing_to_draw_says_so(chart: Any, data: Any, note: str) -> None:
    root = parse(chart(data))
    assert note in texts(root)
    assert not list(root.iter(f"{SVG}polyline"))


def test_same_data_same_bytes() -> None:
    context = {
        "daily": quarter({"2026-07-02": {"sent": 10, "approved": 9, "rejected": 1}}),
        "latency": {"buckets": [{"label": "< 1 min", "count": 7}]},
        "counts": {"dkim_pass": 9, "dkim_fail": 1, "dkim_unknown": 0},
        "controls": [{"id": "CS-001", "open": 1, "review": 0, "waived": 0}],
    }
    assert charts.render_charts(context) == charts.render_charts(context)
