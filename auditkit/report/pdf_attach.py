"""The pack's CSV ledgers inside report.pdf: PDF/A-3 associated files, appended in bounded memory.

WeasyPrint can attach files itself, but it reads each one whole into memory, deflates it
there and, to make the file identifier, joins every object's bytes once more: a quarter of a
million messages has ~700 MB of CSV, so that would take several GB. Instead the report is
rendered as PDF/A-3 without attachments and the ledgers are added as an incremental update
(ISO 32000-1 §7.5.6, as a signature would be): each CSV is deflated chunk by chunk into a
scratch file (`deflate_ledger`, which can run while another process renders the PDF), then
copied into embedded-file streams, with a Filespec for each (`/AFRelationship /Data`,
`/Desc`, MIME `/Subtype`), the catalog's `/AF` array and `/Names /EmbeddedFiles` tree, and a
cross-reference stream pointing back at the rendered revision (`append_ledgers`).

Every byte comes from the inputs (dates are the pack's data time, the second file identifier
is a digest of what is appended), so reruns stay byte-identical.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20
# The embedded-file stream and its Filespec: two objects per attached file.
_PER_FILE = 2


@dataclass(frozen=True)
class Revision:
    """What an update needs to know of the rendered PDF. Plain data, so a renderer running in
    another process can hand it back."""

    startxref: int  # offset of the rendered revision's cross-reference stream (our /Prev)
    size: int  # its /Size: the first object number the update may use
    root: int  # the catalog's object number (the update replaces the catalog)
    info: int | None
    file_id: bytes  # the first element of /ID, as written (kept: it names the document)
    catalog: bytes  # the catalog's entries except /Names and /AF, serialised
    names: bytes  # the /Names dictionary's entries except /EmbeddedFiles, serialised


@dataclass(frozen=True)
class Ledger:
    """One file, deflated into `deflated`, ready to be copied into the PDF."""

    name: str
    description: str
    mime: str
    size: int
    md5: str
    deflated: Path
    length: int  # bytes in `deflated`


def revision_of(pdf: Any, target: Path) -> Revision:
    """Read back what `append_ledgers` needs: the catalog from WeasyPrint's pydyf document
    (captured by a `finisher`), the trailer from the file WeasyPrint wrote."""
    import pydyf

    catalog = {k: v for k, v in pdf.catalog.items() if k not in ("Names", "AF")}
    names = pdf.catalog.get("Names") or {}
    if not isinstance(names, dict):  # WeasyPrint writes /Names inline; anything else is new
        raise ValueError("the rendered PDF's /Names is not an inline dictionary")
    names = {k: v for k, v in names.items() if k != "EmbeddedFiles"}
    with target.open("rb") as fh:
        fh.seek(0, 2)
        end = fh.tell()
        fh.seek(max(0, end - 1024))
        found = re.search(rb"startxref\s+(\d+)\s+%%EOF\s*$", fh.read())
        if found is None:
            raise ValueError("the rendered PDF has no startxref")
        startxref = int(found.group(1))
        fh.seek(startxref)
        head = fh.read(4096)
    trailer = head.split(b"stream", 1)[0]  # the xref stream's dictionary, before its data
    ids = re.search(rb"/ID\s*\[\s*(<[0-9A-Fa-f]*>|\((?:[^()\\]|\\.)*\))", trailer)
    size = re.search(rb"/Size\s+(\d+)", trailer)
    root = re.search(rb"/Root\s+(\d+)\s+0\s+R", trailer)
    info = re.search(rb"/Info\s+(\d+)\s+0\s+R", trailer)
    if not (ids and size and root) or int(root.group(1)) != pdf.catalog.number:
        raise ValueError("the rendered PDF's trailer is not the one WeasyPrint reported")
    return Revision(
        startxref=startxref,
        size=int(size.group(1)),
        root=int(root.group(1)),
        info=int(info.group(1)) if info else None,
        file_id=ids.group(1),
        catalog=pydyf.Dictionary(catalog).data[2:-2],
        names=pydyf.Dictionary(names).data[2:-2],
    )


def deflate_ledger(path: Path, scratch: Path, description: str, mime: str = "text/csv") -> Ledger:
    """Deflate `path` into `scratch` in 1 MiB chunks (never whole in memory), with its MD5
    (the embedded file's /CheckSum) and size."""
    md5 = hashlib.md5(usedforsecurity=False)
    size = length = 0
    squeeze = zlib.compressobj()
    deflated = scratch / f"{path.name}.deflate"
    with path.open("rb") as src, deflated.open("wb") as dst:
        while chunk := src.read(_CHUNK):
            md5.update(chunk)
            size += len(chunk)
            length += dst.write(squeeze.compress(chunk))
        length += dst.write(squeeze.flush())
    return Ledger(path.name, description, mime, size, md5.hexdigest(), deflated, length)


def _pdf_date(when: datetime) -> bytes:
    return when.astimezone(UTC).strftime("(D:%Y%m%d%H%M%SZ)").encode()


def _name(mime: str) -> bytes:
    import pydyf

    return bytes(pydyf.name(mime))


def _string(text: str) -> bytes:
    import pydyf

    return bytes(pydyf.String(text).data)


def append_ledgers(
    target: Path, revision: Revision, ledgers: Sequence[Ledger], *, when: datetime
) -> None:
    """Append `ledgers` to the PDF at `target` as associated files (/AFRelationship /Data),
    in one incremental update. `when` dates the embedded files (their Params)."""
    if not ledgers:
        return
    ledgers = sorted(ledgers, key=lambda led: led.name)  # name trees are sorted by key
    base = revision.size
    tree = base + _PER_FILE * len(ledgers)
    xref_number = tree + 1
    offsets: dict[int, int] = {}
    digest = hashlib.md5(revision.file_id, usedforsecurity=False)
    with target.open("r+b") as out:
        out.seek(-1, 2)
        if out.read(1) not in b"\r\n":  # the update starts on a line of its own
            out.write(b"\n")

        def put(number: int, body: bytes, copy_from: Path | None = None) -> None:
            offsets[number] = out.tell()
            head = b"%d 0 obj\n" % number + body
            out.write(head)
            digest.update(head)
            if copy_from is not None:
                out.write(b"\nstream\n")
                with copy_from.open("rb") as src:
                    shutil.copyfileobj(src, out, _CHUNK)
                out.write(b"\nendstream")
            out.write(b"\nendobj\n")

        stamp = _pdf_date(when)
        for i, led in enumerate(ledgers):
            stream, spec = base + _PER_FILE * i, base + _PER_FILE * i + 1
            digest.update(led.md5.encode())
            put(
                stream,
                b"<</Type /EmbeddedFile /Subtype %s /Filter /FlateDecode /Length %d"
                b" /Params <</Size %d /CheckSum <%s> /CreationDate %s /ModDate %s>>>>"
                % (_name(led.mime), led.length, led.size, led.md5.encode(), stamp, stamp),
                copy_from=led.deflated,
            )
            put(
                spec,
                b"<</Type /Filespec /F %s /UF %s /EF <</F %d 0 R>> /Desc %s"
                b" /AFRelationship /Data>>"
                % (_string(led.name), _string(led.name), stream, _string(led.description)),
            )
        specs = [base + _PER_FILE * i + 1 for i in range(len(ledgers))]
        pairs = b" ".join(
            b"%s %d 0 R" % (_string(led.name), spec)
            for led, spec in zip(ledgers, specs, strict=True)
        )
        put(tree, b"<</Names [%s]>>" % pairs)
        refs = b" ".join(b"%d 0 R" % spec for spec in specs)
        put(
            revision.root,
            b"<<%s/Names <<%s/EmbeddedFiles %d 0 R>>/AF [%s]>>"
            % (revision.catalog, revision.names, tree, refs),
        )
        _write_xref(out, revision, offsets, xref_number, digest.hexdigest())


def _write_xref(
    out: Any, revision: Revision, offsets: dict[int, int], number: int, new_id: str
) -> None:
    """A cross-reference stream for the update (the rendered revision has one too)."""
    start = out.tell()
    offsets[number] = start
    width = max(4, (start.bit_length() + 7) // 8)
    numbers = sorted(offsets)
    rows = b"".join(b"\x01" + offsets[n].to_bytes(width, "big") + b"\x00" for n in numbers)
    index: list[int] = []
    for n in numbers:  # runs of consecutive numbers: [first count first count ...]
        if index and index[-2] + index[-1] == n:
            index[-1] += 1
        else:
            index += [n, 1]
    info = b" /Info %d 0 R" % revision.info if revision.info is not None else b""
    out.write(
        b"%d 0 obj\n<</Type /XRef /Size %d /Index [%s] /W [1 %d 1] /Root %d 0 R%s"
        b" /ID [%s <%s>] /Prev %d /Length %d>>\nstream\n"
        % (
            number,
            number + 1,
            b" ".join(b"%d" % n for n in index),
            width,
            revision.root,
            info,
            revision.file_id,
            new_id.encode(),
            revision.startxref,
            len(rows),
        )
    )
    out.write(rows + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % start)
