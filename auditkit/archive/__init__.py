"""Sent-mail archive: read .eml/mbox/Maildir copies streaming, match them to harvested emails,
verify their DKIM signatures independently, and store messages, results and key records.

MultiMail's API returns no raw message, so this is the only independent evidence of what
was actually sent and signed.

    reading.py       .eml / mbox / Maildir, one message at a time; the header facts we need
    matching.py      archived message → harvested email; archived body vs approved content
    verify.py        DKIM checks, in a process pool when the keys are pinned
    run.py           harvest_archive(): batches stored with Store.commit_batch; the run record

The SQL that reads the archive tables back (ID-001..003, the pack's DKIM column) lives in
`auditkit.evidence_sql`, beside the rest of the evidence SQL.

Verification workers import this package, so nothing it imports at load time may import
DuckDB or Arrow (the store is imported where it is used).
"""

from __future__ import annotations

from auditkit.archive.matching import (
    EmailIndex,
    HarvestedEmail,
    Match,
    compare_body,
    normalise_text,
)
from auditkit.archive.reading import ArchivedMessage, ParsedMessage, iter_archive, parse_message
from auditkit.archive.run import (
    BATCH_SIZE,
    COMMAND,
    DEFAULT_MATCH_WINDOW,
    ArchiveSummary,
    harvest_archive,
    independent_dkim_by_email,
    raw_message,
    stored_key_lookup,
)

__all__ = [
    "BATCH_SIZE",
    "COMMAND",
    "DEFAULT_MATCH_WINDOW",
    "ArchiveSummary",
    "ArchivedMessage",
    "EmailIndex",
    "HarvestedEmail",
    "Match",
    "ParsedMessage",
    "compare_body",
    "harvest_archive",
    "independent_dkim_by_email",
    "iter_archive",
    "normalise_text",
    "parse_message",
    "raw_message",
    "stored_key_lookup",
]
