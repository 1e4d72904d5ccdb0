"""The evidence SQL that controls, evidence pack and archive share: one derivation each.

A pack can never disagree with `check` because both run these same fragments: the bare
From address and the mailbox it was sent from (`from_email_sql`, `located_sql`), a
recipient's bare address (`recipient_address_sql`), what the audit log says about each
email (`email_audit_sql`: sending key, approval, decisions), the oversight mode at send
time (`mode_at_send_sql`), who approved (`approver_kind_sql`) and the DKIM status
(`dkim_status_sql`, over the archive's `INDEPENDENT_DKIM_SQL`). Plain strings and
functions returning strings: no connection, no DuckDB import (the archive's verification
workers import this module).
"""

from __future__ import annotations

import re

from auditkit.vocabulary import CHANGED_BY_PATHS, Vocabulary

# -- addresses and mailboxes -------------------------------------------------------------


def from_email_sql(column: str) -> str:
    """SQL for the bare, lower-cased address in a From value ("Name <a@b>" or "a@b")."""
    return (
        f"lower(trim(CASE WHEN contains({column}, '<') "
        f"THEN regexp_extract({column}, '<([^>]+)>', 1) ELSE {column} END))"
    )


def located_sql(emails: str) -> str:
    """`emails` (a relation with mailbox_id and from_email) with mailbox_id filled in from
    the From address where it is missing: imported (guide-shape) records may lack it."""
    return f"""
    SELECT o.* EXCLUDE (mailbox_id), coalesce(o.mailbox_id, ma.id) AS mailbox_id
    FROM {emails} o
    LEFT JOIN (SELECT lower(trim(address)) AS address, min(id) AS id
               FROM multimail_mailboxes GROUP BY 1) ma
           ON o.mailbox_id IS NULL AND ma.address = o.from_email"""


_IN_ANGLE_BRACKETS = "<([^>]+)>"


def recipient_address_sql(value: str) -> str:
    """SQL for the bare, lower-cased address in a To/Cc value ("Name <a@b>" or "a@b"): the
    part in angle brackets when there is one, else the whole value."""
    return (
        f"lower(trim(coalesce(nullif(regexp_extract({value}, '{_IN_ANGLE_BRACKETS}', 1), ''), "
        f"{value})))"
    )


def bare_address(value: str) -> str:
    """`recipient_address_sql`'s rule in Python, for an address a user gives: "Jane Roe
    <Jane@Example.com>" as pasted from a mail client selects what "jane@example.com" does."""
    inner = re.search(_IN_ANGLE_BRACKETS, value)
    return (inner.group(1) if inner else value).strip().lower()


def addressed_to_sql(to_addresses: str, cc_addresses: str, recipient: str) -> str:
    """SQL true when an email's To or Cc names `recipient` (a lower-cased bare address).
    Each value is reduced by `recipient_address_sql`, the rule the opt-out and header
    controls use, so a recipient's pack holds exactly the mail those controls attribute to
    that recipient, whatever the rendering ("a@b", "Name <a@b>", "Name < A@B >")."""
    return (
        f"len(list_filter(coalesce({to_addresses}, []) || coalesce({cc_addresses}, []), "
        f"lambda a: {recipient_address_sql('a')} = {recipient})) > 0"
    )


# The account's default <slug>.multimail.dev sending domain, which counts as verified.
DEFAULT_DOMAIN_SQL = (
    "SELECT lower(min(slug)) || '.multimail.dev' AS default_domain FROM multimail_account"
)


# -- the audit log ---------------------------------------------------------------------


# The order of an email's audit entries, for "first" and "latest": the source's time, then
# harvest order (chain_seq) for ties, as one sortable number. Every reader of "the send
# entry" uses it, so messages.csv and decisions.csv name the same sending key.
ENTRY_ORDER_SQL = "((epoch_us(created_at)::HUGEINT << 40) + chain_seq)"


def email_audit_sql(
    vocabulary: Vocabulary, emails: str | None = None, *, latest_decision: bool = False
) -> str:
    """One pass over the audit log: what it says about each email (shared by the controls'
    `ak_email_audit` and the evidence pack's decision and sender columns).

    The entries of each meaning are those `vocabulary` recognises (auditkit.vocabulary):
    an unknown meaning matches nothing, and the controls that need it say `inconclusive`.
    `emails`, when given, is a relation whose `id`s limit the scan (a message pack on a
    large store). "First" and "latest" order entries by (created_at, chain_seq): the
    source's time, then harvest order for ties. Entry ids, not metadata, are kept (parsing
    a million JSON documents is the expensive part); callers that need a metadata field
    join back to the few entries they report on.
    """
    sent, approved, rejected, cancelled = (
        vocabulary.predicate(m) for m in ("email_sent", "approved", "rejected", "cancelled")
    )
    decided = f"({approved} OR {rejected} OR {cancelled})"
    # One integer key (microseconds, then chain_seq in the low 40 bits): a deterministic
    # tie-break at about a third of the cost of ordering by a (created_at, chain_seq) struct.
    order = ENTRY_ORDER_SQL
    limit = f"AND resource_id IN (SELECT id FROM ({emails}))" if emails else ""
    # The decision that stands (latest approve/reject/cancel entry): the pack shows it; no
    # control needs it, so the check does not pay for it.
    latest = (
        f""",
       arg_max(CASE WHEN {approved} THEN 'approved' WHEN {rejected} THEN 'rejected'
                    ELSE 'cancelled' END, {order}) FILTER (WHERE {decided}) AS latest_decision,
       arg_max(id, {order}) FILTER (WHERE {decided}) AS latest_decision_entry_id"""
        if latest_decision
        else ""
    )
    return f"""
SELECT resource_id AS email_id,
       arg_min(id, {order}) FILTER (WHERE {sent}) AS sent_entry_id,
       arg_min(actor_key_id, {order}) FILTER (WHERE {sent}) AS sender_key,
       arg_min(id, {order}) FILTER (WHERE {approved}) AS approval_entry_id,
       min(created_at) FILTER (WHERE {approved}) AS approval_logged_at,
       arg_min(actor_key_id, {order}) FILTER (WHERE {approved}) AS approver_key,
       nullif(concat_ws(', ', CASE WHEN bool_or({rejected}) THEN 'rejected' END,
                        CASE WHEN bool_or({cancelled}) THEN 'cancelled' END), '') AS stop_actions,
       min(created_at) FILTER (WHERE {rejected} OR {cancelled}) AS stopped_at,
       min(created_at) FILTER (WHERE {decided}) AS decided_at{latest}
FROM multimail_audit_log
WHERE ({sent} OR {decided}) {limit}
GROUP BY resource_id
"""


def mode_changes_sql(vocabulary: Vocabulary) -> str:
    """Every oversight-mode change the vocabulary recognises, with the modes it names:
    (mailbox_id, entry_id, changed_at, chain_seq, actor_key_id, mode_from, mode_to,
    changed_by)."""
    return f"""
    SELECT resource_id AS mailbox_id, id AS entry_id, created_at AS changed_at, chain_seq,
           actor_key_id, {vocabulary.old_mode_sql()} AS mode_from,
           {vocabulary.new_mode_sql()} AS mode_to,
           list_filter(json_extract_string(metadata, {list(CHANGED_BY_PATHS)!r}),
                       lambda v: v IS NOT NULL)[1] AS changed_by
    FROM multimail_audit_log
    WHERE {vocabulary.predicate("mode_changed")}"""


def mode_at_send_sql(emails: str, vocabulary: Vocabulary) -> str:
    """The oversight mode in force when each email of `emails` was created (one shared
    reconstruction for the controls and the evidence pack).

    `emails` is a relation with (id, mailbox_id, created_at). Returns (email_id, mode,
    source, entry_id): source is `audit_log` (the new mode of the latest change at or
    before created_at — ties broken by chain_seq — or, before the first change, that
    change's old mode; `entry_id` is the entry relied on) or `current_mailbox` (no change
    on record for the mailbox, or no created_at to place the email). Each mailbox's modes
    become [valid_from, valid_to) intervals: an equi-join on the few intervals per mailbox
    is ~3x cheaper than an ASOF join over a million emails.
    """
    return f"""
WITH ak_mode_changes AS (
    SELECT * FROM ({mode_changes_sql(vocabulary)}) WHERE changed_at IS NOT NULL
), ak_mode_intervals AS (
    SELECT mailbox_id, changed_at AS valid_from,
           lead(changed_at) OVER (PARTITION BY mailbox_id ORDER BY changed_at, chain_seq, entry_id)
               AS valid_to,
           mode_to AS mode, entry_id
    FROM ak_mode_changes
    UNION ALL
    SELECT mailbox_id, NULL, min(changed_at),
           arg_min(mode_from, (changed_at, chain_seq, entry_id)),
           arg_min(entry_id, (changed_at, chain_seq, entry_id))
    FROM ak_mode_changes GROUP BY mailbox_id
), ak_emails AS (
    SELECT id, mailbox_id, created_at FROM ({emails})
)
-- The intervals of a mailbox are disjoint (equal change times give empty ones), so each
-- email meets at most one: a plain LEFT JOIN, no aggregation.
SELECT e.id AS email_id,
       coalesce(iv.mode, m.oversight_mode) AS mode,
       -- A change entry that names no mode tells nothing.
       CASE WHEN iv.mode IS NOT NULL THEN 'audit_log'
            WHEN m.oversight_mode IS NOT NULL THEN 'current_mailbox' END AS source,
       CASE WHEN iv.mode IS NOT NULL THEN iv.entry_id END AS entry_id,
       iv.mode IS NOT NULL AND iv.valid_from IS NULL AS before_first_change
FROM ak_emails e
LEFT JOIN ak_mode_intervals iv
       ON iv.mailbox_id = e.mailbox_id
      AND (iv.valid_from IS NULL OR e.created_at >= iv.valid_from)
      AND (iv.valid_to IS NULL OR e.created_at < iv.valid_to)
LEFT JOIN multimail_mailboxes m ON m.id = e.mailbox_id
"""


# Where an approval entry's metadata may name the person who decided.
REVIEWER_PATHS = ("$.reviewer", "$.approver", "$.approved_by", "$.decided_by", "$.user")


def approver_kind_sql(approver: str, approver_key: str, approval_entry_id: str) -> str:
    """What kind of identity approved: `key` (a known API key id, or an `mm_` key), `person`
    (an email address), `session` (an approval-page session: the id says so, or the approval
    entry was written by no key), `unknown` otherwise. Shared with the evidence pack."""
    return f"""CASE
        WHEN {approver} IS NULL THEN NULL
        WHEN {approver} IN (SELECT lower(id) FROM multimail_api_keys)
             OR {approver} LIKE 'mm\\_%' ESCAPE '\\' THEN 'key'
        WHEN {approver} LIKE '%@%' THEN 'person'
        WHEN {approver} = lower({approver_key}) THEN 'key'
        WHEN {approver} LIKE '%sess%'
             OR ({approval_entry_id} IS NOT NULL AND {approver_key} IS NULL) THEN 'session'
        ELSE 'unknown' END"""


# -- DKIM and the sent-mail archive ----------------------------------------------------

# One row per matched email: (email_id, status, detail, body_hash_failed). The controls
# join it onto delivered emails (ID-001) and read body_hash_failed for ID-002. Precedence
# over all signatures of all archived copies of the email: any `fail` (tampering, wrong
# key, expiry) > a pass aligned with From > an unaligned pass (reported as fail) >
# permerror > temperror > none. Emails with no archived copy have no row.
INDEPENDENT_DKIM_SQL = """
WITH sig AS (
    SELECT m.email_id, m.source_path, r.signature_index, r.result, r.reason, r.domain,
           r.selector, r.aligned_with_from,
           CASE WHEN r.result = 'fail' THEN 1
                WHEN r.result = 'pass' AND coalesce(r.aligned_with_from, false) THEN 2
                WHEN r.result = 'pass' THEN 3
                WHEN r.result = 'permerror' THEN 4
                WHEN r.result = 'temperror' THEN 5
                ELSE 6 END AS rank
    FROM archive_messages m JOIN archive_dkim_results r USING (sha256)
    WHERE m.email_id IS NOT NULL
), body_hash AS (
    SELECT email_id, bool_or(result = 'fail' AND reason LIKE 'body hash mismatch%') AS failed
    FROM sig GROUP BY email_id
)
SELECT s.email_id,
       CASE s.rank WHEN 1 THEN 'fail' WHEN 2 THEN 'pass' WHEN 3 THEN 'fail' ELSE s.result END
           AS status,
       CASE WHEN s.domain IS NULL THEN '' ELSE 'd=' || s.domain || ' s=' || s.selector || ': ' END
           || CASE s.rank WHEN 2 THEN 'aligned with From'
                          WHEN 3 THEN 'passes but d= is not aligned with the From domain'
                          ELSE coalesce(s.reason, s.result) END
           || ' (' || s.source_path || ')' AS detail,
       b.failed AS body_hash_failed
FROM sig s JOIN body_hash b USING (email_id)
QUALIFY row_number() OVER (PARTITION BY s.email_id
                           ORDER BY s.rank, s.source_path, s.signature_index) = 1
ORDER BY s.email_id
"""


# ID-002: archived copies whose content is not what was approved — the text part differs
# from the approved markdown (changed before signing) or a DKIM body hash fails (changed
# after signing). One row per archived message; email_id NULL when it matched nothing.
ALTERED_CONTENT_SQL = """
SELECT m.email_id, m.sha256, m.source_path,
       coalesce(m.body_matches_approved = false, false) AS body_differs_from_approved,
       coalesce(bool_or(r.result = 'fail' AND r.reason LIKE 'body hash mismatch%'), false)
           AS body_hash_failed,
       m.body_diff_summary
FROM archive_messages m LEFT JOIN archive_dkim_results r USING (sha256)
GROUP BY ALL
HAVING body_differs_from_approved OR body_hash_failed
ORDER BY m.email_id, m.source_path
"""

# ID-003: archived copies carrying none of the agent identity headers.
MISSING_IDENTITY_SQL = """
SELECT email_id, sha256, source_path, from_address, subject
FROM archive_messages
WHERE identity_header IS NULL AND agent_header IS NULL AND agent_identity_header IS NULL
ORDER BY email_id, source_path
"""


def dkim_status_sql(emails: str) -> str:
    """One row per email of `emails` (a relation with id, dkim_verified, from_email):
    (id, from_domain, status pass|fail|unknown, source_kind archive|message|domain|none,
    source: a sentence naming the evidence).

    The archive wins when an archived copy was verified: its pass counts only when aligned
    with From (INDEPENDENT_DKIM_SQL already reports an unaligned pass as fail); fail,
    permerror and none (unsigned) are fail; temperror is unknown. The account's
    <slug>.multimail.dev default domain counts as a signed domain.
    """
    return f"""
WITH ak_account AS (
    {DEFAULT_DOMAIN_SQL}
), ak_domains AS (
    SELECT lower(domain) AS domain, bool_or(dkim_verified) AS dkim_verified
    FROM multimail_domains WHERE domain IS NOT NULL GROUP BY 1
), ak_archive AS ({INDEPENDENT_DKIM_SQL}
), ak_emails AS (
    SELECT id, dkim_verified, nullif(split_part(from_email, '@', 2), '') AS from_domain
    FROM ({emails})
)
SELECT e.id, e.from_domain,
       CASE WHEN x.status IS NOT NULL
                 THEN CASE x.status WHEN 'pass' THEN 'pass' WHEN 'temperror' THEN 'unknown'
                                    ELSE 'fail' END
            WHEN e.dkim_verified IS NOT NULL
                 THEN CASE WHEN e.dkim_verified THEN 'pass' ELSE 'fail' END
            WHEN e.from_domain = a.default_domain THEN 'pass'
            WHEN d.dkim_verified IS NOT NULL
                 THEN CASE WHEN d.dkim_verified THEN 'pass' ELSE 'fail' END
            ELSE 'unknown' END AS status,
       CASE WHEN x.status IS NOT NULL THEN 'archive'
            WHEN e.dkim_verified IS NOT NULL THEN 'message'
            WHEN e.from_domain = a.default_domain OR d.dkim_verified IS NOT NULL THEN 'domain'
            ELSE 'none' END AS source_kind,
       CASE WHEN x.status IS NOT NULL
                 THEN 'archive verification (' || x.status || '): ' || x.detail
            WHEN e.dkim_verified IS NOT NULL THEN 'message dkim_verified'
            WHEN e.from_domain = a.default_domain THEN 'MultiMail default domain '
                || a.default_domain
            WHEN d.dkim_verified IS NOT NULL THEN 'domain dkim_verified (' || e.from_domain || ')'
            ELSE 'none: From domain ' || coalesce(e.from_domain, '?')
                || ' is not a harvested domain' END AS source
FROM ak_emails e
LEFT JOIN ak_archive x ON x.email_id = e.id
LEFT JOIN ak_domains d ON d.domain = e.from_domain
LEFT JOIN ak_account a ON true
"""
