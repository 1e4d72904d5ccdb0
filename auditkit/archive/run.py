"""`harvest_archive`: read, match, verify and store every archived message; record the run.

Messages are verified in batches and each batch is written in one transaction
(`Store.commit_batch`); the raw bytes are kept zlib-compressed, keyed by their SHA-256,
so the same message read twice is stored once.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditkit.archive.matching import EmailIndex, Match, compare_body
from auditkit.archive.reading import ParsedMessage, iter_archive
from auditkit.archive.verify import analysed
from auditkit.dkim import PASS, SignatureResult, apply_expiry
from auditkit.dkim_keys import KeyLookup, KeyRecord, PinnedKeyLookup
from auditkit.errors import ConfigError
from auditkit.evidence_sql import INDEPENDENT_DKIM_SQL

if TYPE_CHECKING:  # verification workers import this package: keep DuckDB and Arrow out
    import pyarrow as pa

    from auditkit.store import Store

COMMAND = "harvest-archive"
DEFAULT_MATCH_WINDOW = timedelta(minutes=60)
BATCH_SIZE = 500


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
        for raw, (parsed, results) in analysed(iter_archive(paths), lookup, workers):
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
    from auditkit.store import Load  # here, not at module level: see the TYPE_CHECKING note

    store.commit_batch(
        "archive_messages",
        pa.Table.from_pylist(message_rows, schema=_message_schema()),
        pk="sha256",
        also=[
            # A message's signatures are re-checked as a whole: drop rows of an earlier check
            # that this one no longer produces (e.g. a 'none' row once keys are known).
            Load(
                "archive_dkim_results",
                result_rows,
                pk=("sha256", "signature_index"),
                replace_where=("sha256", [r["sha256"] for r in message_rows]),
            ),
            # Key records are evidence of what DNS said at first sight: never overwritten.
            Load("dkim_key_records", list(key_rows.values())),
        ],
    )
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
    rows = store.con.execute(  # fetchall, not fetchone: see Store.count
        "SELECT raw_compressed FROM archive_messages WHERE sha256 = ?", [sha256]
    ).fetchall()
    return zlib.decompress(rows[0][0]) if rows else None


def independent_dkim_by_email(store: Store) -> dict[str, tuple[str, str]]:
    """email_id → (status, detail) from the archive, for ID-001 (see INDEPENDENT_DKIM_SQL)."""
    return {row[0]: (row[1], row[2]) for row in store.query(INDEPENDENT_DKIM_SQL)}
