"""The pack's population reconciliation: reconciliation.csv and the PDF/HTML page show
PC-001's table, every difference, formula-neutralised and byte-identical across reruns."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditkit.config import Settings
from auditkit.controls import run_controls
from auditkit.report import write_pack
from auditkit.report.population import RECONCILIATION_FIELDS
from auditkit.store import Store
from tests.builders import ScratchStore, StoreBuilder
from tests.controls.conftest import NOW, Q3
from tests.controls.test_population import DAYS, GAP, world

HOSTILE = '=HYPERLINK("http://evil.example")'


@pytest.fixture
def store() -> Iterator[Store]:
    with ScratchStore() as s:
        build = StoreBuilder(s)
        world(build, unlisted=(GAP,))
        build.usage(DAYS[0], HOSTILE, 1)  # an event type is source text: untrusted
        yield s


def pack(store: Store, out: Path, formats: tuple[str, ...] = ("csv", "html")) -> Path:
    results = run_controls(store, Settings(), Q3, now=NOW)
    write_pack(store, Settings(), Q3, out, results=results, formats=formats)
    return out


def rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text("utf-8"), newline="")))


def test_reconciliation_csv_holds_the_daily_table(store: Store, tmp_path: Path) -> None:
    out = pack(store, tmp_path / "p")
    text = (out / "reconciliation.csv").read_text("utf-8")
    assert text.splitlines()[0] == ",".join(RECONCILIATION_FIELDS)
    table = rows(out / "reconciliation.csv")
    keys = [(r["date"], r["source"], r["event_type"]) for r in table]
    assert keys == sorted(keys)
    sent = {
        r["date"]: r for r in table if (r["source"], r["event_type"]) == ("usage", "emails_sent")
    }
    assert set(sent) == {d.isoformat() for d in DAYS}  # every day, not only the differences
    gap = sent["2026-08-05"]
    assert (gap["source_count"], gap["harvested_count"], gap["difference"], gap["status"]) == (
        "6",
        "5",
        "1",
        "difference",
    )
    assert {r["status"] for d, r in sent.items() if d != "2026-08-05"} == {"match"}
    audit = next(r for r in table if r["source"] == "audit_log" and r["date"] == "2026-08-05")
    assert audit["email_ids"] == GAP and audit["status"] == "difference"
    webhook = next(
        r for r in table if r["source"] == "webhook_deliveries" and r["date"] == "2026-08-05"
    )
    assert (webhook["source_count"], webhook["harvested_count"]) == ("6", "5")
    # Source text never runs as a formula.
    assert f"'{HOSTILE}" in {r["event_type"] for r in table}
    assert {r["status"] for r in table if r["event_type"] == "api_calls"} == {"not_reconciled"}


def test_the_page_lists_every_difference_and_the_daily_table(store: Store, tmp_path: Path) -> None:
    html = (pack(store, tmp_path / "p") / "report.html").read_text("utf-8")
    page = html[html.index('id="reconciliation"') :]
    assert "Population reconciliation (PC-001)" in page and "Differences (3)" in page
    assert GAP in page and "6 / 5" in page and "2026-08-10" in page
    assert HOSTILE not in html and "=HYPERLINK(&#34;" in html  # escaped, shown as text


def test_reruns_give_identical_bytes_and_the_manifest_lists_it(
    store: Store, tmp_path: Path
) -> None:
    import json

    a, b = pack(store, tmp_path / "a"), pack(store, tmp_path / "b")
    assert (a / "reconciliation.csv").read_bytes() == (b / "reconciliation.csv").read_bytes()
    manifest = json.loads((a / "manifest.json").read_text("utf-8"))
    assert "reconciliation.csv" in [f["path"] for f in manifest["files"]]
    oscal = json.loads((a / "assessment-results.json").read_text("utf-8"))
    resources = oscal["assessment-results"]["back-matter"]["resources"]
    assert "reconciliation.csv" in {r["title"] for r in resources}


def test_a_pack_of_chosen_messages_has_no_population_table(store: Store, tmp_path: Path) -> None:
    results = run_controls(store, Settings(), Q3, now=NOW, message_ids=["em_0801_0"])
    out = tmp_path / "m"
    write_pack(
        store,
        Settings(),
        Q3,
        out,
        results=results,
        message_ids=["em_0801_0"],
        formats=("csv", "html"),
    )
    assert (out / "reconciliation.csv").read_text("utf-8").splitlines() == [
        ",".join(RECONCILIATION_FIELDS)
    ]
    assert 'id="reconciliation"' not in (out / "report.html").read_text("utf-8")


@pytest.mark.pdf
def test_the_pdf_page_shows_the_table_and_carries_the_csv(store: Store, tmp_path: Path) -> None:
    import pikepdf
    from pypdf import PdfReader

    out = pack(store, tmp_path / "p", formats=("pdf", "csv"))
    text = "\n".join(page.extract_text() for page in PdfReader(out / "report.pdf").pages)
    assert "Population reconciliation (PC-001)" in text
    assert "6 / 5" in text and "2026-08-05" in text
    with pikepdf.open(out / "report.pdf") as pdf:
        attached = pdf.attachments["reconciliation.csv"].get_file().read_bytes()
    assert attached == (out / "reconciliation.csv").read_bytes()
