"""The PDF (and with it every pack file): byte-identical reruns, readable text, data dates."""

from __future__ import annotations

from pathlib import Path

import pytest
from pypdf import PdfReader

from auditkit.report import write_pack
from tests.report.factory import Q3, demo_store, results, settings

pytestmark = pytest.mark.pdf


@pytest.fixture(scope="module")
def two_packs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pdf")
    with demo_store() as store:
        write_pack(store, settings(), Q3, root / "a", results=results(), sample_size=3)
    # A separate store built from the same rows: nothing may depend on object identity or
    # order of insertion.
    with demo_store() as store:
        write_pack(
            store, settings(), Q3, root / "b", results=list(reversed(results())), sample_size=3
        )
    return root / "a", root / "b"


def test_two_runs_give_byte_identical_files(two_packs: tuple[Path, Path]) -> None:
    a, b = two_packs
    names = sorted(p.name for p in a.iterdir())
    assert names == [
        "assessment-results.json",
        "audit_log.csv",
        "decisions.csv",
        "findings.csv",
        "manifest.json",
        "messages.csv",
        "reconciliation.csv",
        "report.html",
        "report.pdf",
    ]
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{name} differs between runs"


def test_pdf_has_the_expected_text_and_data_dates(two_packs: tuple[Path, Path]) -> None:
    reader = PdfReader(two_packs[0] / "report.pdf")
    text = "\n".join(page.extract_text() for page in reader.pages)
    for expected in (
        "Northwind Supply Co.",
        "Control results",
        "Approval recorded before the message existed.",
        "Message evidence",
        "Appendix: methodology",
        "random.Random(42)",
        "OV-001",
        "not linked",
        # The charts' text is text in the PDF too, not paths.
        "Daily outbound volume (UTC days, by creation date)",
        "Findings by control",
        "sent (delivered or bounced)",
    ):
        assert expected in text, expected
    assert reader.metadata is not None
    assert reader.metadata.get("/CreationDate", "").startswith("D:20261001060000")
    assert reader.metadata.get("/ModDate", "").startswith("D:20261001060000")
    assert reader.metadata.title == "Evidence pack: Northwind Supply Co., 2026Q3"
    assert len(reader.pages) >= 5


def test_pdf_shows_flagged_messages_but_caps_pages(tmp_path: Path) -> None:
    with demo_store() as store:
        write_pack(
            store,
            settings(),
            Q3,
            tmp_path / "p",
            results=results(),
            sample_size=0,
            max_flagged_pages=1,
            formats=("pdf",),
        )
    text = "\n".join(page.extract_text() for page in PdfReader(tmp_path / "p" / "report.pdf").pages)
    assert "1 of 3" in text  # flagged shown of flagged total
    assert "-50% today" in text  # the first flagged message (em-04)
    assert (
        "approved before created"
        not in text.split("Message evidence", 1)[1].split("Appendix", 1)[0]
    )


def test_pdf_rendered_in_a_second_process_is_byte_identical(
    two_packs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import auditkit.report

    monkeypatch.setattr(
        auditkit.report, "PARALLEL_PDF_MESSAGES", 0
    )  # big-pack path: spawn a renderer
    with demo_store() as store:
        write_pack(store, settings(), Q3, tmp_path / "c", results=results(), sample_size=3)
    for name in ("report.pdf", "messages.csv", "manifest.json"):
        assert (tmp_path / "c" / name).read_bytes() == (two_packs[0] / name).read_bytes(), name
