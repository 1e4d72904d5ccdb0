"""Render the one sample quarter in other MultiMail "dialects": same facts, other words.

Real MultiMail accounts write their audit log and their mail in dialects auditkit cannot
know in advance (MultiMail documents no action names). This module's one job is to copy a
dataset written by `python -m auditkit.sample` and rewrite how it says things, never what
happened: the same emails at the same times with the same statuses and delivery times, the
same decisions on the same emails at the same times, the same planted violations. Controls
can then be tested on renderings they were not tuned to.

    python -m auditkit.sample_dialects --dialect decide-key --out /tmp/decide-key [--data DIR]
    auditkit sandbox --dialect decide-key        # renders into a temporary folder and serves it

A dialect is five independent axes:

| dialect | vocabulary | approver | opt_out | postal | type_tags |
|---|---|---|---|---|---|
| `canonical` | canonical | person | markdown_link | body | category |
| `decide-key` | decide | key | labelled_url | body | none |
| `past-tense-session` | past_tense | session | reply_instruction | signature | type |
| `mailbox-update` | mailbox_update | person | labelled_url | signature | none |
| `no-email-entries` | no_email_entries | key | markdown_link | body | category |

Audit vocabulary (`multimail/audit_log.jsonl`):

- `canonical`: the sample's names (ARCHITECTURE.md "Audit-log vocabulary"), unchanged.
- `decide`: `oversight.approved` / `oversight.rejected` become one action `oversight.decide`
  with metadata `{email_id, action: "approve"|"reject", reason}`; the rest unchanged.
- `past_tense`: `email.sent` → `email.created`, `oversight.approved` → `email.approved`,
  `oversight.rejected` → `email.rejected`, `email.cancelled` → `email.canceled`, resource
  type `email` → `message`; `mailbox.oversight_mode_changed` → `mailbox.mode_updated` with
  metadata `{changes: {oversight_mode: {from, to}}, changed_by}`; `api_key.created` →
  `key.created`; `suppression.added` → `suppression.created`.
- `mailbox_update`: mode changes become a generic `mailbox.updated` with metadata
  `{changes: {oversight_mode: [old, new]}, actor: changed_by}`, and three decoy
  `mailbox.updated` entries per mailbox (actor `system`, before 2026-07-01) change
  `display_name` and `signature_block` only, ending at the values in `mailboxes.json`;
  `oversight.approved` → `oversight.approve`, `oversight.rejected` → `oversight.reject`.
- `no_email_entries`: every entry whose resource type is `email` is dropped, and so are the
  mutations (`multimail/mutations.json`) that target a dropped entry.

MultiMail's own counts follow the vocabulary: with `decide`, usage event types become
`email.sent`, `email.received`, `oversight.decide`; with `past_tense`, `sent`, `received`,
`decided`, `requests`, and webhook event types `message.*` become `email.*` (in the
deliveries and in the subscriptions of `webhooks.json`). The counts are unchanged.

Approver identity (outbound `approved_by` and the decision entries' metadata/actor):

- `person`: unchanged (`approved_by` and metadata `reviewer` are the reviewer's email).
- `key`: `approved_by` is the actor key of the email's approval entry (the reviewers'
  oversight key, or the Legacy ops key for the planted self-approval; the oversight key
  when there is no approval entry); decision entries lose metadata `reviewer`.
- `session`: decisions made on the hosted approval page: `approved_by` and the entry's
  metadata `session_id` are `hps_` + the first 20 hex digits of sha256(email id), the
  entry's `actor_key_id` is null and its metadata says `via: approval_page` (no
  `reviewer`). A decision whose actor is not the reviewers' oversight key (the planted
  self-approval) stays a key decision: `approved_by` = that key, actor unchanged.

Content (outbound markdown that carries the sample's footer; inbound mail is never touched):

- opt_out `markdown_link`: unchanged. `labelled_url`: the `[Unsubscribe](…)` sentence
  becomes, per message (by hash of its id), `Unsubscribe here: https://northwind.example/p/
  <token>` or `Manage your email preferences: https://northwind.example/prefs/<token>`.
  `reply_instruction`: it becomes `Don't want these emails? Just reply "unsubscribe" and
  we'll take you off the list.` or `To stop receiving these messages, reply STOP to this
  email.`
- postal `body`: unchanged. `signature`: the one-line address leaves the footer and the
  body ends with a signature block `-- ` / `Northwind Supply Co.` / `1200 Harbor Boulevard,
  Suite 400` / `Oakland, California 94607`.
- type_tags `category`: unchanged. `none`: the `category` tag is removed. `type`: it becomes
  `type: marketing` for `promotion`, `type: transactional` otherwise.

Mail without an opt-out or an address stays without one; audit entry ids never change; a
`set` mutation of `metadata.reason` still applies. When rewritten bodies include messages in
the DKIM-signed `archive/`, the archive is re-signed from the rendered bodies with the same
test key (`auditkit.archive_sample`), so its planted cases stay exactly the same. Files are
written in the source's order (the audit log stays chronological); rendering is
deterministic (the only "randomness" is hashing ids), and `canonical` reproduces the source
byte for byte. Non-canonical renderings prefix `README.md` with a note naming the dialect.
`expected_findings.json` and `expected_demo_findings.json` are copied unchanged: they list
the facts, which some dialects cannot express. With `key` or `session` approvers nothing
says who approved as a person (the planted non-reviewer approval by intern@ looks like any
reviewer's decision), and with `session` the oversight key's `last_used_at` in
`api_keys.json` still reflects the decisions it no longer signs. With `no_email_entries`
everything only the email entries said is gone: sending keys (so the self-approval),
decisions, cancellations, and the AL-001/AL-002 plants that live in those entries.
`imports/` (integration-guide records) and `invalid/` are copied as they are.

Modules: `axes` (Dialect and the named dialects), `rewrite` (one audit entry or email as a
dialect says it), `render` (a whole dataset folder, the archive re-signed), `cli` (`main`).
"""

from auditkit.devtools.dialects.axes import DIALECTS, Dialect, get_dialect
from auditkit.devtools.dialects.cli import main
from auditkit.devtools.dialects.render import render, rendered
from auditkit.devtools.dialects.rewrite import session_id

__all__ = ["DIALECTS", "Dialect", "get_dialect", "main", "render", "rendered", "session_id"]
