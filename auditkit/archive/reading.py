"""Reading archived copies of sent mail: .eml files, mbox files and Maildir folders, one
message at a time, and the header facts and text body auditkit needs from each.

mbox caveat: an mboxo writer quotes body lines starting with "From " as ">From ", which
changes the body and so breaks its DKIM body hash; prefer .eml or Maildir exports.
"""

from __future__ import annotations

import email.header
import email.utils
import hashlib
import mailbox
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path

from auditkit.errors import ConfigError
from auditkit.mime_text import PARSER, inline_text_parts


@dataclass(frozen=True)
class ArchivedMessage:
    raw: bytes
    source_path: str  # file, plus "#<mbox index>" or "#<Maildir key>"


def iter_archive(paths: Iterable[Path]) -> Iterator[ArchivedMessage]:
    """Every message under `paths`, one at a time, in a stable order.

    A path may be an .eml file, an mbox file (anything else starting with "From "), a
    Maildir folder (has cur/ and new/), or a folder searched recursively for those.
    """
    for path in paths:
        if not path.exists():
            raise ConfigError(f"archive path {path} does not exist")
        try:
            yield from _iter_path(path)
        except (OSError, mailbox.Error) as exc:
            raise ConfigError(f"archive {path} cannot be read: {exc}") from exc


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def _iter_path(path: Path) -> Iterator[ArchivedMessage]:
    if path.is_dir():
        if _is_maildir(path):
            yield from _iter_maildir(path)
            return
        for child in sorted(path.iterdir()):
            if child.is_dir() or child.suffix.lower() in {".eml", ".mbox"}:
                yield from _iter_path(child)
        return
    if path.suffix.lower() == ".eml":
        yield ArchivedMessage(path.read_bytes(), str(path))
        return
    with path.open("rb") as fh:
        first = fh.read(5)
    if first == b"From ":
        yield from _iter_mbox(path)
    else:
        # A lone message without the .eml suffix (e.g. a file from a journal export).
        yield ArchivedMessage(path.read_bytes(), str(path))


def _iter_mbox(path: Path) -> Iterator[ArchivedMessage]:
    box = mailbox.mbox(path, create=False)
    try:
        for index, key in enumerate(box.iterkeys()):
            yield ArchivedMessage(box.get_bytes(key), f"{path}#{index}")
    finally:
        box.close()


def _iter_maildir(path: Path) -> Iterator[ArchivedMessage]:
    box = mailbox.Maildir(path, factory=None, create=False)
    for key in sorted(box.iterkeys()):
        yield ArchivedMessage(box.get_bytes(key), f"{path}#{key}")


# -- parsing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedMessage:
    """The header facts and text body we need, taken from one raw message."""

    sha256: str
    source_path: str
    size_bytes: int
    message_id: str | None
    multimail_id: str | None
    from_address: str | None
    to_addresses: tuple[str, ...]
    subject: str | None
    date: datetime | None
    identity_header: str | None
    agent_header: str | None
    agent_identity_header: str | None
    body_sha256: str
    text_body: str | None

    @property
    def from_domain(self) -> str | None:
        if self.from_address and "@" in self.from_address:
            return self.from_address.rsplit("@", 1)[1].lower()
        return None

    @property
    def message_id_local_part(self) -> str | None:
        if not self.message_id:
            return None
        inner = self.message_id.strip().strip("<>")
        return inner.split("@", 1)[0] if "@" in inner else None


def _header(msg: Message, name: str) -> str | None:
    value = msg.get(name)
    if value is None:
        return None
    try:
        # RFC 2047 encoded words (e.g. a non-ASCII Subject) → text.
        text = str(email.header.make_header(email.header.decode_header(str(value))))
    except (LookupError, ValueError, UnicodeDecodeError):
        text = str(value)
    return " ".join(text.split())


def _addresses(msg: Message, name: str) -> tuple[str, ...]:
    values = [str(v) for v in msg.get_all(name, [])]
    return tuple(sorted({addr.lower() for _, addr in email.utils.getaddresses(values) if addr}))


def _date(msg: Message) -> datetime | None:
    raw = msg.get("Date")
    if raw is None:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(str(raw))
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:  # RFC 5322 "-0000": time zone unknown, read as UTC
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _text_body(msg: Message) -> str | None:
    """The first inline text/plain part, transfer-decoded and charset-decoded."""
    return next(inline_text_parts(msg, ("text/plain",)), None)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _raw_body(raw: bytes) -> bytes:
    for sep in (b"\r\n\r\n", b"\n\n"):
        pos = raw.find(sep)
        if pos >= 0:
            return raw[pos + len(sep) :]
    return b""


def parse_message(raw: bytes, source_path: str) -> ParsedMessage:
    msg = PARSER.parsebytes(raw)
    froms = _addresses(msg, "From")
    return ParsedMessage(
        sha256=_sha256(raw),
        source_path=source_path,
        size_bytes=len(raw),
        message_id=_header(msg, "Message-ID"),
        multimail_id=_header(msg, "X-MultiMail-Id"),
        from_address=froms[0] if froms else None,
        to_addresses=_addresses(msg, "To"),
        subject=_header(msg, "Subject"),
        date=_date(msg),
        identity_header=_header(msg, "X-MultiMail-Identity"),
        agent_header=_header(msg, "X-MultiMail-Agent"),
        agent_identity_header=_header(msg, "X-Agent-Identity"),
        body_sha256=_sha256(_raw_body(raw)),  # of the body bytes after the header block
        text_body=_text_body(msg),
    )
