"""report.pdf is PDF/A-3u with the four CSV ledgers attached as associated files.

No PDF/A validator installs from the registries this project uses (veraPDF is a Java
download of its own), so these tests check with pikepdf (qpdf) the structure PDF/A-3
requires of what auditkit controls: the XMP identification, the output intent and its ICC
profile, embedded fonts, and each associated file (/AF, /AFRelationship /Data, MIME
/Subtype, /Desc, /F and /UF, Params with dates and checksum), byte for byte equal to the
pack's CSV files.
"""

from __future__ import annotations

import hashlib
import io
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pikepdf
import pytest

from auditkit.report import CSV_DESCRIPTIONS, CSV_FILES, write_pack
from auditkit.report.pdf import render_pdf
from auditkit.report.pdf_attach import append_ledgers, deflate_ledger
from tests.report.factory import HARVESTED, Q3, demo_store, results, settings

pytestmark = pytest.mark.pdf

DATA_DATE = "D:20261001060000Z"  # the pack's data time (HARVESTED), not the clock


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pdfa") / "pack"
    with demo_store() as store:
        write_pack(store, settings(), Q3, out, results=results(), sample_size=3)
    return out


@pytest.fixture(scope="module")
def pdf(pack: Path) -> Iterator[pikepdf.Pdf]:
    with pikepdf.open(pack / "report.pdf") as doc:
        yield doc


def test_qpdf_finds_no_syntax_problem(pdf: pikepdf.Pdf) -> None:
    assert pdf.check_pdf_syntax() == []
    assert pdf.pdf_version == "1.7"
    assert len(pdf.trailer.ID) == 2  # PDF/A: a file identifier in every trailer


def test_xmp_identifies_pdf_a_3u_with_the_data_dates(pdf: pikepdf.Pdf) -> None:
    meta = pdf.open_metadata()
    assert meta["pdfaid:part"] == "3"
    assert meta["pdfaid:conformance"] == "U"
    assert meta["xmp:CreateDate"] == meta["xmp:ModifyDate"] == "2026-10-01T06:00:00Z"
    assert str(pdf.docinfo["/CreationDate"]).startswith(DATA_DATE[:16])
    assert "Evidence pack: Northwind Supply Co., 2026Q3" in meta["dc:title"]


def test_output_intent_carries_an_srgb_icc_profile(pdf: pikepdf.Pdf) -> None:
    [intent] = pdf.Root.OutputIntents
    assert intent.S == pikepdf.Name.GTS_PDFA1
    profile = intent.DestOutputProfile
    assert profile.N == 3
    icc = profile.read_bytes()
    assert icc[36:40] == b"acsp" and icc[16:20] == b"RGB "  # an ICC profile for RGB


def _fonts(resources: pikepdf.Dictionary, seen: set[tuple[int, int]]) -> Iterator[pikepdf.Object]:
    """Every font reachable from `resources`, through form XObjects and Type 0 descendants."""
    for font in resources.get("/Font", {}).values():
        yield font
        yield from font.get("/DescendantFonts", [])
    for xobject in resources.get("/XObject", {}).values():
        if xobject.get("/Subtype") == "/Form" and xobject.objgen not in seen:
            seen.add(xobject.objgen)
            yield from _fonts(xobject.get("/Resources", pikepdf.Dictionary()), seen)


def test_every_font_is_embedded(pdf: pikepdf.Pdf) -> None:
    seen: set[tuple[int, int]] = set()
    fonts = [f for page in pdf.pages for f in _fonts(page.Resources, seen)]
    assert fonts
    for font in fonts:
        if font.Subtype == "/Type0":
            continue  # its descendant carries the descriptor
        if font.Subtype == "/Type3":
            continue  # glyphs are content streams, nothing to embed
        descriptor = font.FontDescriptor
        assert any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")), font.get(
            "/BaseFont"
        )


def test_the_csv_ledgers_are_associated_files_equal_to_the_pack_files(
    pdf: pikepdf.Pdf, pack: Path
) -> None:
    specs = list(pdf.Root.AF)
    assert sorted(str(s.UF) for s in specs) == sorted(CSV_FILES)
    assert sorted(pdf.attachments) == sorted(CSV_FILES)  # the /Names /EmbeddedFiles tree too
    for spec in specs:
        name = str(spec.UF)
        assert spec.Type == "/Filespec" and str(spec.F) == name
        assert spec.AFRelationship == pikepdf.Name.Data
        assert str(spec.Desc) == CSV_DESCRIPTIONS[name]
        stream = spec.EF.F
        assert stream.Type == "/EmbeddedFile" and stream.Subtype == pikepdf.Name("/text/csv")
        data = stream.read_bytes()
        assert data == (pack / name).read_bytes(), name
        params = stream.Params
        assert params.Size == len(data)
        assert bytes(params.CheckSum) == hashlib.md5(data).digest()
        assert str(params.ModDate) == str(params.CreationDate) == DATA_DATE


def test_the_ledgers_are_an_update_over_an_intact_first_revision(pack: Path) -> None:
    """The rendered PDF/A is left as it was; the ledgers come in one incremental update
    that keeps the document's identifier."""
    data = (pack / "report.pdf").read_bytes()
    assert data.count(b"%%EOF") == 2
    first = data[: data.index(b"%%EOF") + len(b"%%EOF\n")]
    with pikepdf.open(io.BytesIO(first)) as rendered, pikepdf.open(io.BytesIO(data)) as final:
        assert rendered.open_metadata()["pdfaid:part"] == "3"
        assert "/AF" not in rendered.Root and "/AF" in final.Root
        assert final.trailer.ID[0] == rendered.trailer.ID[0]
        assert final.trailer.ID[1] != rendered.trailer.ID[1]
        assert int(final.trailer.Prev) == int(first.rsplit(b"startxref", 1)[1].split()[0])


def test_a_pdf_only_pack_has_no_attachments(tmp_path: Path) -> None:
    with demo_store() as store:
        write_pack(store, settings(), Q3, tmp_path / "p", results=results(), formats=("pdf",))
    with pikepdf.open(tmp_path / "p" / "report.pdf") as doc:
        assert doc.open_metadata()["pdfaid:part"] == "3"
        assert "/AF" not in doc.Root and not doc.attachments
        assert doc.check_pdf_syntax() == []


def test_attaching_streams_in_bounded_memory(tmp_path: Path) -> None:
    """A 24 MB ledger goes in without ever being held whole: Python's peak stays ~1 MB."""
    big = tmp_path / "messages.csv"
    line = b"".join(hashlib.sha256(b"%d" % i).hexdigest().encode() for i in range(4)) + b"\r\n"
    with big.open("wb") as fh:
        for _ in range(24 * 1024 * 1024 // len(line)):
            fh.write(line)
    target = tmp_path / "report.pdf"
    revision = render_pdf("<!doctype html><title>t</title><p>ledger</p>", target, as_of=HARVESTED)
    tracemalloc.start()
    try:
        ledger = deflate_ledger(big, tmp_path, "big")
        append_ledgers(target, revision, [ledger], when=HARVESTED)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    with pikepdf.open(target) as doc:
        assert doc.attachments["messages.csv"].get_file().read_bytes() == big.read_bytes()
        assert doc.check_pdf_syntax() == []
