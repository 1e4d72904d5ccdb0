"""Sent-mail archive: read .eml/mbox/Maildir copies streaming, match them to harvested emails,
verify their DKIM signatures independently, and store messages, results and key records.

MultiMail's API returns no raw message, so this is the only independent evidence of what
was actually sent and signed. Messages are read one at a time (mbox via `mailbox.mbox`,
which indexes offsets and reads one message per `get_bytes`), verified in batches, and
written per batch in one transaction; the raw bytes are kept zlib-compressed, keyed by
their SHA-256, so the same message read twice is stored once.

mbox caveat: an mboxo writer quotes body lines starting with "From " as ">From ", which
changes the body and so breaks its DKIM body hash; prefer .eml or Maildir exports.
"""

from __future__ import annotations

import difflib
import email.header
import email.policy
import email.utils
import functools
import hashlib
import logging
import mailbox
import multiprocessing
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.parser import BytesParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditkit.dkim import PASS, SignatureResult, apply_expiry, verify_message
from auditkit.dkim_keys import KeyLookup, KeyRecord, PinnedKeyLookup
from auditkit.errors import ConfigError
from auditkit.evidence_sql import INDEPENDENT_DKIM_SQL

if TYPE_CHECKING:  # verification workers import this module: keep DuckDB and Arrow out
    import pyarrow as pa

    from auditkit.store import Store

logger = logging.getLogger(__name__)

COMMAND = "harvest-archive"
DEFAULT_MATCH_WINDOW = timedelta(minutes=60)
BATCH_SIZE = 500
# compat32: raw header strings. The modern policy's header objects cost ~3x the whole
# DKIM check per message, and we need only a few headers and the text part.
_PARSER = BytesParser(policy=email.policy.compat32)


# -- reading -----------------------------------------------------------------------------


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
    for part in msg.walk():
        if (
            part.get_content_type() != "text/plain"
            or part.get_content_disposition() == "attachment"
        ):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            return None
        charset = part.get_content_charset() or "us-ascii"
        try:
            return payload.decode(charset, errors="replace")
        except LookupError:  # unknown charset name
            return payload.decode("utf-8", errors="replace")
    return None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _raw_body(raw: bytes) -> bytes:
    for sep in (b"\r\n\r\n", b"\n\n"):
        pos = raw.find(sep)
        if pos >= 0:
            return raw[pos + len(sep) :]
    return b""


def parse_message(raw: bytes, source_path: str) -> ParsedMessage:
    msg = _PARSER.parsebytes(raw)
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


# -- matching ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HarvestedEmail:
    id: str
    to_addresses: tuple[str, ...]
    subject: str | None
    created_at: datetime | None
    delivered_at: datetime | None
    body_markdown: str | None


@dataclass(frozen=True)
class Match:
    method: str  # header | heuristic | ambiguous | none
    email: HarvestedEmail | None = None
    candidates: tuple[str, ...] = ()


def _subject_key(subject: str | None) -> str:
    return " ".join((subject or "").split()).lower()


class EmailIndex:
    """Outbound harvested emails, indexed by id and by (subject, recipients)."""

    def __init__(self, emails: Iterable[HarvestedEmail]) -> None:
        self.by_id: dict[str, HarvestedEmail] = {}
        self.by_subject_recipients: dict[tuple[str, tuple[str, ...]], list[HarvestedEmail]] = {}
        for e in emails:
            self.by_id[e.id] = e
            self.by_subject_recipients.setdefault(
                (_subject_key(e.subject), e.to_addresses), []
            ).append(e)

    @classmethod
    def from_store(cls, store: Store) -> EmailIndex:
        rows = store.query(
            "SELECT id, to_addresses, subject, created_at, delivered_at, body_markdown "
            "FROM multimail_emails "
            "WHERE direction IS DISTINCT FROM 'inbound' ORDER BY id"
        )
        return cls(
            HarvestedEmail(
                r[0], tuple(sorted({a.lower() for a in (r[1] or [])})), r[2], r[3], r[4], r[5]
            )
            for r in rows
        )

    def match(self, msg: ParsedMessage, window: timedelta) -> Match:
        """By MultiMail id in a header, else recipients + subject + send time; never a guess."""
        for candidate_id in (msg.multimail_id, msg.message_id_local_part):
            if candidate_id and candidate_id in self.by_id:
                return Match("header", self.by_id[candidate_id], (candidate_id,))
        if msg.date is None:
            return Match("none")
        found = []
        for e in self.by_subject_recipients.get((_subject_key(msg.subject), msg.to_addresses), []):
            # Sent between creation and delivery (approval can take days), give or take the window.
            start = e.created_at or e.delivered_at
            end = e.delivered_at or e.created_at
            if start is not None and end is not None and start - window <= msg.date <= end + window:
                found.append(e)
        if len(found) == 1:
            return Match("heuristic", found[0], (found[0].id,))
        if len(found) > 1:
            return Match("ambiguous", None, tuple(sorted(e.id for e in found)))
        return Match("none")


# -- body vs approved content ------------------------------------------------------------


def normalise_text(text: str) -> str:
    return " ".join(text.split())


def compare_body(
    archived_text: str | None, approved_markdown: str | None
) -> tuple[bool | None, str | None]:
    """(matches, short diff summary). None when there is nothing to compare."""
    if approved_markdown is None:
        return None, None
    if archived_text is None:
        return None, "archived message has no text/plain part to compare"
    archived, approved = (
        normalise_text(archived_text).split(),
        normalise_text(approved_markdown).split(),
    )
    if archived == approved:
        return True, None
    changes = []
    for tag, a1, a2, b1, b2 in difflib.SequenceMatcher(
        a=approved, b=archived, autojunk=False
    ).get_opcodes():
        if tag == "equal":
            continue
        before, after = " ".join(approved[a1:a2])[:60], " ".join(archived[b1:b2])[:60]
        changes.append(f"{tag} at word {a1}: {before!r} -> {after!r}")
    more = f" (+{len(changes) - 3} more)" if len(changes) > 3 else ""
    summary = (
        f"content changed after approval: {len(changes)} change(s), "
        f"approved {len(approved)} words, "
        f"archived {len(archived)} words; " + "; ".join(changes[:3]) + more
    )
    return False, summary


# -- verification (in worker processes when the keys are pinned) --------------------------


def _analyse(
    item: tuple[bytes, str], lookup: KeyLookup
) -> tuple[ParsedMessage, list[SignatureResult]]:
    """Parse one message and check its signatures' cryptography.

    Expiry needs the matched email's delivery time, so it is applied afterwards by
    `apply_expiry`; here the reference time is the far past (nothing counts as expired).
    """
    raw, source_path = item
    parsed = parse_message(raw, source_path)
    return parsed, verify_message(
        raw, lookup, from_domain=parsed.from_domain, reference_time=_EPOCH
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_worker_lookup: KeyLookup | None = None


def _init_worker(lookup: KeyLookup) -> None:
    global _worker_lookup
    _worker_lookup = lookup


def _analyse_chunk(
    items: list[tuple[bytes, str]],
) -> list[tuple[ParsedMessage, list[SignatureResult]]]:
    assert _worker_lookup is not None, "worker started without _init_worker"
    return [_analyse(item, _worker_lookup) for item in items]


# -- the run -----------------------------------------------------------------------------


@dataclass
class ArchiveSummary:
    run_id: str
    messages: int = 0
    new_messages: int = 0
    duplicates_in_run: int = 0
    matched: dict[str, int] = field(
        default_factory=lambda: {"header": 0, "heuristic": 0, "ambiguous": 0, "none": 0}
    )
    dkim: dict[str, int] = field(default_factory=dict)
    body_mismatches: int = 0
    missing_identity: int = 0
    key_records_captured: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "messages": self.messages,
            "new_messages": self.new_messages,
            "duplicates_in_run": self.duplicates_in_run,
            "matched": dict(self.matched),
            "dkim": dict(sorted(self.dkim.items())),
            "body_mismatches": self.body_mismatches,
            "missing_identity": self.missing_identity,
            "key_records_captured": self.key_records_captured,
            "problems": self.problems,
        }


def harvest_archive(
    store: Store,
    paths: Sequence[Path],
    lookup: KeyLookup,
    *,
    run_id: str,
    match_window: timedelta = DEFAULT_MATCH_WINDOW,
    workers: int = 1,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    batch_size: int = BATCH_SIZE,
) -> ArchiveSummary:
    """Read, match, verify and store every message under `paths`; record the run.

    `workers` > 1 verifies in a process pool, which only pinned lookups allow (DNS lookups
    and their captures stay in this process).
    """
    if workers > 1 and not isinstance(lookup, PinnedKeyLookup):
        raise ConfigError(
            "parallel verification needs pinned keys (--keys or --stored-keys), not live DNS"
        )
    summary = ArchiveSummary(run_id)
    store.start_run(
        run_id,
        COMMAND,
        {
            "paths": [str(p) for p in paths],
            "match_window_minutes": match_window.total_seconds() / 60,
            "workers": workers,
        },
    )
    try:
        index = EmailIndex.from_store(store)
        known_keys = {r[0] for r in store.query("SELECT id FROM dkim_key_records")}
        known_messages = {r[0] for r in store.query("SELECT sha256 FROM archive_messages")}
        seen: set[str] = set()
        batch: list[tuple[ParsedMessage, bytes, list[SignatureResult], Match]] = []
        for raw, (parsed, results) in _analysed(iter_archive(paths), lookup, workers):
            summary.messages += 1
            if parsed.sha256 in seen:
                summary.duplicates_in_run += 1
                continue
            seen.add(parsed.sha256)
            if parsed.sha256 not in known_messages:
                summary.new_messages += 1
            match = index.match(parsed, match_window)
            reference = (
                match.email.delivered_at
                if match.email and match.email.delivered_at
                else parsed.date or clock()
            )
            batch.append((parsed, raw, [apply_expiry(r, reference) for r in results], match))
            if len(batch) >= batch_size:
                _store_batch(store, batch, run_id, clock(), known_keys, summary)
                batch = []
        _store_batch(store, batch, run_id, clock(), known_keys, summary)
    except BaseException as exc:
        store.finish_run(
            run_id, "failed", summary.to_dict() | {"problems": []}, error=str(exc)[:500]
        )
        raise
    store.finish_run(run_id, "ok", {k: v for k, v in summary.to_dict().items() if k != "problems"})
    return summary


def _analysed(
    messages: Iterator[ArchivedMessage], lookup: KeyLookup, workers: int
) -> Iterator[tuple[bytes, tuple[ParsedMessage, list[SignatureResult]]]]:
    """(raw, analysis) in archive order; with workers > 1, chunks go to a process pool with
    a bounded number in flight, so a large archive is never held in memory whole."""
    if workers <= 1:
        for m in messages:
            yield m.raw, _analyse((m.raw, m.source_path), lookup)
        return
    chunk_size, max_in_flight = 64, workers * 4
    in_flight: deque[
        tuple[list[bytes], Future[list[tuple[ParsedMessage, list[SignatureResult]]]]]
    ] = deque()
    # spawn, not fork: the parent holds a DuckDB connection and its threads.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(lookup,)
    ) as pool:
        chunk: list[tuple[bytes, str]] = []
        for m in messages:
            chunk.append((m.raw, m.source_path))
            if len(chunk) >= chunk_size:
                in_flight.append(([raw for raw, _ in chunk], pool.submit(_analyse_chunk, chunk)))
                chunk = []
                while len(in_flight) >= max_in_flight:
                    raws, fut = in_flight.popleft()
                    yield from zip(raws, fut.result(), strict=True)
        if chunk:
            in_flight.append(([raw for raw, _ in chunk], pool.submit(_analyse_chunk, chunk)))
        while in_flight:
            raws, fut = in_flight.popleft()
            yield from zip(raws, fut.result(), strict=True)


def _store_batch(
    store: Store,
    batch: list[tuple[ParsedMessage, bytes, list[SignatureResult], Match]],
    run_id: str,
    now: datetime,
    known_keys: set[str],
    summary: ArchiveSummary,
) -> None:
    if not batch:
        return
    import pyarrow as pa  # here, not at module level: see the TYPE_CHECKING note

    message_rows, result_rows, key_rows = [], [], {}
    for parsed, raw, results, match in batch:
        matches, diff = compare_body(
            parsed.text_body, match.email.body_markdown if match.email else None
        )
        message_rows.append(
            {
                "sha256": parsed.sha256,
                "source_path": parsed.source_path,
                "message_id_header": parsed.message_id,
                "multimail_id_header": parsed.multimail_id,
                "email_id": match.email.id if match.email else None,
                "match_method": match.method,
                "match_candidates": list(match.candidates),
                "from_address": parsed.from_address,
                "to_addresses": list(parsed.to_addresses),
                "subject": parsed.subject,
                "date_header": parsed.date,
                "identity_header": parsed.identity_header,
                "agent_header": parsed.agent_header,
                "agent_identity_header": parsed.agent_identity_header,
                "body_sha256": parsed.body_sha256,
                "body_matches_approved": matches,
                "body_diff_summary": diff,
                "size_bytes": parsed.size_bytes,
                "raw_compressed": zlib.compress(raw, 6),
                "run_id": run_id,
                "harvested_at": now,
            }
        )
        summary.matched[match.method] += 1
        summary.body_mismatches += matches is False
        summary.missing_identity += not (
            parsed.identity_header or parsed.agent_header or parsed.agent_identity_header
        )
        for r in results:
            summary.dkim[r.result] = summary.dkim.get(r.result, 0) + 1
            rec: KeyRecord | None = r.key_record
            if rec is not None and rec.id not in known_keys:
                key_rows[rec.id] = rec.to_row()
            result_rows.append(
                {
                    "sha256": parsed.sha256,
                    "signature_index": r.index,
                    "domain": r.domain,
                    "selector": r.selector,
                    "result": r.result,
                    "reason": r.reason,
                    "aligned_with_from": r.aligned_with_from,
                    "key_record_id": rec.id if rec else None,
                    "verified_at": now,
                    "run_id": run_id,
                }
            )
            if r.result != PASS and len(summary.problems) < 200:
                summary.problems.append(
                    {
                        "source_path": parsed.source_path,
                        "email_id": match.email.id if match.email else None,
                        "signature_index": r.index,
                        "result": r.result,
                        "reason": r.reason,
                    }
                )
        if match.method == "ambiguous" and len(summary.problems) < 200:
            summary.problems.append(
                {
                    "source_path": parsed.source_path,
                    "match": "ambiguous",
                    "candidates": list(match.candidates),
                }
            )
    with store.transaction():
        store.upsert(
            "archive_messages",
            pa.Table.from_pylist(message_rows, schema=_message_schema()),
            pk="sha256",
        )
        # A message's signatures are re-checked as a whole: drop rows of an earlier check
        # that this one no longer produces (e.g. a 'none' row once keys are known).
        store.con.register(
            "_auditkit_archive_shas", pa.table({"sha256": [r["sha256"] for r in message_rows]})
        )
        try:
            store.con.execute(
                "DELETE FROM archive_dkim_results "
                "WHERE sha256 IN (SELECT sha256 FROM _auditkit_archive_shas)"
            )
        finally:
            store.con.unregister("_auditkit_archive_shas")
        store.upsert("archive_dkim_results", result_rows, pk=["sha256", "signature_index"])
        # Key records are evidence of what DNS said at first sight: never overwritten.
        store.upsert("dkim_key_records", list(key_rows.values()))
    known_keys.update(key_rows)
    summary.key_records_captured += len(key_rows)


@functools.cache
def _message_schema() -> pa.Schema:
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            ("sha256", pa.string()),
            ("source_path", pa.string()),
            ("message_id_header", pa.string()),
            ("multimail_id_header", pa.string()),
            ("email_id", pa.string()),
            ("match_method", pa.string()),
            ("match_candidates", pa.list_(pa.string())),
            ("from_address", pa.string()),
            ("to_addresses", pa.list_(pa.string())),
            ("subject", pa.string()),
            ("date_header", ts),
            ("identity_header", pa.string()),
            ("agent_header", pa.string()),
            ("agent_identity_header", pa.string()),
            ("body_sha256", pa.string()),
            ("body_matches_approved", pa.bool_()),
            ("body_diff_summary", pa.string()),
            ("size_bytes", pa.int64()),
            ("raw_compressed", pa.binary()),
            ("run_id", pa.string()),
            ("harvested_at", ts),
        ]
    )


def stored_key_lookup(store: Store) -> PinnedKeyLookup:
    """Every key record captured in the store, newest first per name: re-verify offline."""
    rows = store.query(
        "SELECT selector, domain, record_text, fetched_at, resolver, source FROM dkim_key_records "
        "WHERE record_text IS NOT NULL ORDER BY fetched_at DESC, id"
    )
    return PinnedKeyLookup(KeyRecord(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows)


def raw_message(store: Store, sha256: str) -> bytes | None:
    """The archived bytes of one message (decompressed), e.g. to re-verify or export it."""
    row = store.con.execute(
        "SELECT raw_compressed FROM archive_messages WHERE sha256 = ?", [sha256]
    ).fetchone()
    return None if row is None else zlib.decompress(row[0])


def independent_dkim_by_email(store: Store) -> dict[str, tuple[str, str]]:
    """email_id → (status, detail) from the archive, for ID-001 (see INDEPENDENT_DKIM_SQL)."""
    return {row[0]: (row[1], row[2]) for row in store.query(INDEPENDENT_DKIM_SQL)}
