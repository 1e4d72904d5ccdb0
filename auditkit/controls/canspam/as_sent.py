"""The as-sent copies in the sent-mail archive, read for CS-001's address and CS-002's opt-out.

MultiMail stores the author's markdown; it renders HTML at send time, and a footer that it,
a template or a signature adds then (an unsubscribe link: the API has a CAN-SPAM
unsubscribe page; a postal address) is in what the recipient got and not in the stored
draft. So for the few commercial messages whose draft lacks one, each archived copy matched
to the message (`auditkit harvest-archive`) is decoded, every inline text part, plain and
HTML, and read with the same rules as the draft.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from auditkit.controls.context import CheckContext
from auditkit.mime_text import displayed_text
from auditkit.opt_out_text import LINK_WORDING, REPLY_WORDING
from auditkit.store.temp_tables import create_temp_table, drop_temp_table

# Messages read per query: their archived copies are decompressed in memory.
BATCH = 1_000
# What a finding's `checked` evidence adds for the copies.
AS_SENT_SOURCE = (
    " + every text part of the message's archived as-sent copies, where the archive holds any"
)

_COPIES_SQL = """
SELECT email_id, source_path, raw_compressed FROM archive_messages
WHERE email_id IN (SELECT unnest($ids)) ORDER BY email_id, source_path
"""
_OPT_OUT_IN_COPIES_SQL = f"""
WITH hits AS (
    SELECT email_id, source_path, text,
           {LINK_WORDING.first_hit_sql("text")} AS link_hit,
           {REPLY_WORDING.first_hit_sql("text")} AS reply_hit
    FROM ak_as_sent
)
SELECT email_id, source_path,
       {LINK_WORDING.kept_sql("link_hit", "text")} AS link,
       {REPLY_WORDING.kept_sql("reply_hit", "text")} AS reply
FROM hits ORDER BY email_id, source_path
"""


def over_as_sent_copies(
    ctx: CheckContext, email_ids: Sequence[str], query: str, **params: Any
) -> list[dict[str, Any]]:
    """`query`'s rows over the archived copies of `email_ids`, which it reads from the temp
    table ak_as_sent (email_id, source_path, text: every inline text part, decoded)."""
    rows: list[dict[str, Any]] = []
    for start in range(0, len(email_ids), BATCH):
        copies = ctx.rows(_COPIES_SQL, ids=list(email_ids[start : start + BATCH]))
        if not copies:
            continue
        create_temp_table(
            ctx.con,
            "ak_as_sent",
            {
                "email_id": ("VARCHAR", [c["email_id"] for c in copies]),
                "source_path": ("VARCHAR", [c["source_path"] for c in copies]),
                "text": (
                    "VARCHAR",
                    [displayed_text(zlib.decompress(c["raw_compressed"])) for c in copies],
                ),
            },
        )
        try:
            rows.extend(ctx.rows(query, **params))
        finally:
            drop_temp_table(ctx.con, "ak_as_sent")
    return rows


@dataclass(frozen=True)
class AsSent:
    """What the archive holds of one message: how many copies, and the first opt-out one
    of them shows (None: none does)."""

    copies: int
    opt_out: str | None = None


def as_sent_opt_outs(ctx: CheckContext, email_ids: Sequence[str]) -> dict[str, AsSent]:
    """Each of `email_ids` that has an archived copy → what its copies show (CS-002)."""
    found: dict[str, AsSent] = {}
    for r in over_as_sent_copies(ctx, email_ids, _OPT_OUT_IN_COPIES_SQL):
        seen = found.get(r["email_id"], AsSent(copies=0))
        found[r["email_id"]] = AsSent(seen.copies + 1, seen.opt_out or r["link"] or r["reply"])
    return found
