"""HTML rendering: StrictUndefined, escaping of untrusted email content, and a PDF renderer
that fetches nothing (checked against a real local HTTP server that counts requests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditkit.errors import ReportError
from auditkit.findings import ControlResult, Finding
from auditkit.report import write_pack
from auditkit.report.pdf import render_html, render_pdf, safe_href
from tests.conftest import HitCounter
from tests.report.factory import Q3, at, demo_store, email, results, settings, with_provenance


def test_strict_undefined_turns_a_missing_key_into_report_error() -> None:
    with pytest.raises(ReportError, match="lacks"):
        render_html({"company": "x"})


def test_strict_undefined_catches_one_missing_nested_key(tmp_path: Path) -> None:
    from auditkit.report import charts
    from auditkit.report.context import build_context
    from auditkit.report.messages import MessageTable
    from auditkit.report.scope import Scope

    with demo_store() as store, MessageTable(store, Scope(Q3), settings(), []) as view:
        ctx = build_context(
            store,
            settings(),
            Scope(Q3),
            [],
            view,
            sample_size=2,
            seed=1,
            snapshot_digest="d",
            catalogue_version="v",
            parameters={},
        )
        ctx["charts"] = charts.render_charts(ctx)
        assert "<html" in render_html(ctx)
        del ctx["counts"]["dkim_unknown"]
        with pytest.raises(ReportError, match="dkim_unknown"):
            render_html(ctx)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://app.intercom.com/a/inbox/x/inbox/conversation/1",
            "https://app.intercom.com/a/inbox/x/inbox/conversation/1",
        ),
        ("javascript:alert(1)", None),
        ("http://evil.test/", None),
        ("data:text/html,x", None),
        (None, None),
    ],
)
def test_only_https_links_become_hrefs(url: str | None, expected: str | None) -> None:
    assert safe_href(url) == expected


def hostile_store(port: int):  # type: ignore[no-untyped-def]
    store = demo_store()
    base = f"http://127.0.0.1:{port}"
    store.upsert(
        "multimail_emails",
        [
            email(
                "em-x1",
                at(25),
                subject=f'<img src="{base}/subject.png">',
                body=f'<script>alert("pwn")</script>\n<img src="{base}/x">\n'
                f'<link rel="stylesheet" href="{base}/z.css">\n'
                f"<style>body {{ background: url({base}/y) }}</style>\n"
                f'<div style="background:url({base}/w)">w</div>\n'
                f'<iframe src="{base}/frame"></iframe>\n![md]({base}/md.png)',
                conversation_id="conv-js",
            ),
        ],
    )
    store.upsert(
        "intercom_conversations",
        [
            with_provenance(
                {
                    "id": "conv-js",
                    "found": True,
                    "http_status": 200,
                    "fetched_at": at(26),
                    "inbox_url": "javascript:alert(1)",
                    "contact_email": f'<img src="{base}/contact">',
                }
            )
        ],
    )
    return store


@pytest.mark.pdf
def test_hostile_email_content_renders_as_text_and_fetches_nothing(
    tmp_path: Path, listener: HitCounter
) -> None:
    base = f"http://127.0.0.1:{listener.port}"
    extra = ControlResult(
        id="TR-001",
        title="Linked",
        severity="low",
        status="fail",
        findings=(
            Finding(
                "TR-001",
                "email",
                "em-x1",
                f'reason <img src="{base}/reason">',
                {"html": f'<img src="{base}/ev">'},
            ),
        ),
    )
    with hostile_store(listener.port) as store:
        write_pack(
            store, settings(), Q3, tmp_path / "p", results=[*results(), extra], sample_size=0
        )
    html = (tmp_path / "p" / "report.html").read_text(encoding="utf-8")
    assert listener.paths == []
    assert "&lt;script&gt;alert(&#34;pwn&#34;)&lt;/script&gt;" in html
    assert f"&lt;img src=&#34;{base}/x&#34;&gt;" in html
    assert f"url({base}/y)" in html  # shown as text inside the escaped body
    assert f"&lt;link rel=&#34;stylesheet&#34; href=&#34;{base}/z.css&#34;&gt;" in html
    assert f"&lt;img src=&#34;{base}/subject.png&#34;&gt;" in html
    assert "<script" not in html and "<iframe" not in html and f'src="{base}' not in html
    assert 'href="javascript:' not in html
    assert "default-src 'none'" in html  # CSP for browsers opening report.html
    from pypdf import PdfReader

    text = "".join(page.extract_text() for page in PdfReader(tmp_path / "p" / "report.pdf").pages)
    assert "<script>alert" in text.replace("\n", "")


@pytest.mark.pdf
def test_pdf_fetcher_refuses_remote_urls_even_in_raw_html(
    tmp_path: Path, listener: HitCounter
) -> None:
    base = f"http://127.0.0.1:{listener.port}"
    raw = (
        f'<html><head><link rel="stylesheet" href="{base}/a.css"><style>@import url({base}/b.css);'
        f"p {{ background: url({base}/c.png) }}</style></head>"
        f'<body><p>x</p><img src="{base}/d.png">'
        f'<img src="file:///etc/hostname"></body></html>'
    )
    render_pdf(raw, tmp_path / "raw.pdf", as_of=at(30))
    assert listener.paths == []
    assert (tmp_path / "raw.pdf").read_bytes().startswith(b"%PDF-")


def test_html_marks_time_order_violations_and_sample_seed(tmp_path: Path) -> None:
    with demo_store() as store:
        write_pack(
            store,
            settings(),
            Q3,
            tmp_path / "p",
            results=results(),
            formats=("html",),
            seed=7,
            sample_size=3,
        )
    html = (tmp_path / "p" / "report.html").read_text(encoding="utf-8")
    assert (
        "Time order broken: created 2026-08-22T09:00:00Z is after approved 2026-08-21T09:00:00Z"
        in html
    )
    assert "random.Random(7).sample(range(9), 3)" in html
    assert "Northwind Supply Co." in html


def test_each_control_lists_at_most_the_cap_and_says_how_many_more_are_in_findings_csv(
    tmp_path: Path,
) -> None:
    from auditkit.report.results import MAX_FINDINGS_SHOWN_PER_CONTROL as cap

    many = cap + 7  # 7 more than the cap: 5 open and 2 waived left out
    findings = tuple(
        Finding(
            "TR-001",
            "email",
            f"em_{n:04d}",
            f"Reason {n}.",
            {"n": n},
            state="waived" if n >= many - 2 else "open",
        )
        for n in range(many)
    )
    few = (Finding("CS-003", "email", "em_x", "One.", {}),)
    control = ControlResult("TR-001", "Linked", "low", "fail", findings=findings, checked=many)
    other = ControlResult("CS-003", "Address", "high", "fail", findings=few, checked=1)
    with demo_store() as store:
        write_pack(
            store,
            settings(),
            Q3,
            tmp_path / "p",
            results=[control, other],
            formats=("html", "csv"),
        )
    html = (tmp_path / "p" / "report.html").read_text(encoding="utf-8")
    assert f"Findings ({many + 1:,})" in html  # the heading counts every finding
    listed = [n for n in range(many) if f">em_{n:04d}</span> — Reason {n}." in html]
    assert listed == list(range(cap))  # the first `cap`, in findings.csv order
    assert "TR-001</span>: 7 more finding(s) (5 open, 2 waived) are not listed here" in html
    assert "em_x</span> — One." in html  # a control under the cap loses nothing
    assert html.count("more finding(s)") == 1
    with (tmp_path / "p" / "findings.csv").open(encoding="utf-8") as f:
        assert sum(1 for _ in f) == 1 + many + 1  # header, then every finding
