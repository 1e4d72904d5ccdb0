"""The small files written after the mail: account objects, expected findings, Intercom
`me.json`, import records, malformed pages, `auditkit.toml` and `README.md`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from auditkit.devtools.sample.base import dumps, iso, write_json
from auditkit.devtools.sample.intercom import intercom_me
from auditkit.devtools.sample.planted import Violations
from auditkit.devtools.sample.world import (
    APPROVAL_REASONS,
    COMPANY,
    DEALS_DOMAIN,
    DEFAULT_MESSAGES,
    DEFAULT_SEED,
    DOMAIN,
    INTERCOM_APP_ID,
    INTERCOM_EU_APP_ID,
    OUTREACH_MONITORED_AT,
    REVIEWERS,
    SNAPSHOT_AT,
)


class SmallFiles(Violations):
    """Everything but the streamed JSONL files, written once the mail is out."""

    def _write_small_files(self) -> None:
        out = self.out
        mm = out / "multimail"
        for key in self.keys.values():
            used = self.key_last_used.get(key["id"])
            key["last_used_at"] = iso(used) if used else None
        self.keys["harvester"]["last_used_at"] = iso(SNAPSHOT_AT)
        write_json(mm / "account.json", self.account)
        write_json(mm / "mailboxes.json", {"mailboxes": self.mailbox_records})
        write_json(mm / "api_keys.json", {"api_keys": list(self.keys.values())})
        write_json(mm / "domains.json", {"domains": self.domains})
        write_json(mm / "webhooks.json", {"subscriptions": self.webhooks})
        self.suppressions.sort(key=lambda s: (s["created_at"], s["id"]))
        write_json(mm / "suppressions.json", {"suppressions": self.suppressions})
        self._expect(
            "OVS-005",
            "api_key",
            self.keys["legacy"]["id"],
            "Legacy ops key holds both send and oversight scopes",
        )
        self._plant_mutations(mm)
        self.expected.sort(key=lambda f: (f["control_id"], f["target_type"], f["target_id"]))
        write_json(out / "expected_findings.json", self.expected)
        write_json(out / "intercom" / "me.json", intercom_me(INTERCOM_APP_ID, "US"))
        write_json(out / "intercom" / "eu" / "me.json", intercom_me(INTERCOM_EU_APP_ID, "EU"))
        self._write_imports(out / "imports")
        self._write_invalid(out / "invalid")
        (out / "auditkit.toml").write_text(config_toml(), encoding="utf-8")
        (out / "README.md").write_text(self._readme(), encoding="utf-8")

    def _write_imports(self, folder: Path) -> None:
        """Integration-guide shape records, dated 2026Q2 so importing them next to the demo
        store leaves the 2026Q3 finding set unchanged. The variants exercise the normaliser."""
        rng = self.rng
        records = []
        for i in range(6):
            created = datetime(2026, 6, 8 + i * 2, 15, 4 + i, 12, tzinfo=UTC)
            decided = created + timedelta(minutes=18 + 7 * i)
            first, to = self._reserved_customer()
            record: dict[str, Any] = {
                "message_id": f"msg_{self.ids.new(created)}",
                "from": f"support@{DOMAIN}",
                "to": to if i % 2 == 0 else [to],
                "subject": f"Following up on your support request #{5100 + i}",
                "body": f"Hi {first},\n\nYour replacement part for request #{5100 + i} shipped "
                "today.\n\n"
                "— Northwind Support",
                "status": "delivered",
                "delivered_at": iso(decided + timedelta(seconds=rng.randint(3, 15))),
                "decision": {
                    "reviewer": REVIEWERS[i % len(REVIEWERS)][1],
                    ("decision" if i != 3 else "action"): "approved" if i != 3 else "approve",
                    "decided_at": iso(decided),
                    "note": rng.choice(APPROVAL_REASONS),
                },
                "dkim_verified": True,
                "metadata": {
                    "source": "intercom",
                    "conversation_id": str(215460000000000 + i * 7),
                    "agent": "fin",
                },
                ("created_at" if i % 3 else "received_at"): iso(created),
            }
            records.append(record)
        records.append(
            {
                "from": f"support@{DOMAIN}",
                "to": "nobody@example.com",
                "subject": "Record without an id",
                "status": "delivered",
                "decision": {"reviewer": REVIEWERS[0][1], "decision": "approved"},
                "metadata": {"source": "intercom", "agent": "fin"},
            }
        )
        (folder / "read_email_guide.jsonl").write_text(
            "".join(dumps(r) + "\n" for r in records), encoding="utf-8"
        )

    def _write_invalid(self, folder: Path) -> None:
        page = dumps(
            {"emails": [{"id": "01J0000000000000000000BAD1", "subject": "cut"}], "cursor": "1751"}
        )
        (folder / "emails_page_truncated.json").write_text(page[: len(page) // 2], encoding="utf-8")
        write_json(
            folder / "emails_page_not_a_list.json",
            {"emails": {"id": "01J0000000000000000000BAD2"}, "cursor": None},
        )
        write_json(
            folder / "email_wrong_types.json",
            {
                "id": "01J0000000000000000000BAD3",
                "from": ["support@northwind.example"],
                "to": 42,
                "subject": None,
                "received_at": True,
                "status": 7,
                "tags": "fin",
                "approved_at": "yesterday",
                "has_attachments": "yes",
                "attachments": {"name": "x.pdf"},
            },
        )
        audit = dumps(
            {
                "entries": [{"id": "01J0000000000000000000BAD4", "action": "email.sent"}],
                "cursor": None,
            }
        )
        (folder / "audit_page_truncated.json").write_text(audit[:40], encoding="utf-8")

    def _readme(self) -> str:
        reviewers = ",\n  ".join(email for _, email in REVIEWERS)
        rows = "\n".join(
            f"| `{f['control_id']}` | {f['target_type']} | `{f['target_id']}` | {f['note']} |"
            for f in self.expected
        )
        return f"""# Sample quarter: {COMPANY}, 2026Q3

Generated by `python -m auditkit.sample --messages {DEFAULT_MESSAGES} --out sample_data --seed {DEFAULT_SEED}`.
Do not edit by hand: `tests/devtools/test_sample.py` regenerates it and fails on any difference.
The sandbox (`auditkit sandbox`, `auditkit demo`) serves these files as the MultiMail and
Intercom APIs.

## Files

| file | what it is |
|---|---|
| `multimail/account.json` | `GET /v1/account` body (AccountInfo), with the CAN-SPAM postal address |
| `multimail/mailboxes.json` | `GET /v1/mailboxes` body; `created_at` is epoch ms as in the real API |
| `multimail/api_keys.json` | `GET /v1/api-keys` body: key prefixes only, never a full key |
| `multimail/domains.json` | `GET /v1/domains` body |
| `multimail/webhooks.json` | `GET /v1/webhooks` body (`subscriptions`, no signing secrets) |
| `multimail/suppressions.json` | `GET /v1/suppression` body, oldest first |
| `multimail/emails.jsonl` | one email a line, oldest first: full `read_email` records plus `mailbox_id` and `direction` for outbound; list-summary fields only for inbound |
| `multimail/audit_log.jsonl` | AuditEntry records, oldest first (the API serves them newest first) |
| `multimail/mutations.json` | source-side changes `SandboxServer.apply_mutations()` makes between two harvests |
| `multimail/usage_daily.json` | `GET /v1/usage?breakdown=daily` data for every day of the sample (`emails_sent`: outbound mail that left MultiMail, by the day it was created; `emails_received`; `oversight_actions`: approval and rejection entries; `api_calls`, which no record can check); the sandbox serves the days in `from`..`to` |
| `multimail/webhook_deliveries.jsonl` | `GET /v1/webhook-deliveries` records, oldest first: `message.sent`/`message.delivered`/`message.bounced` deliveries to the tenant-wide subscription, as a provider keeps them (the last 14 days before the snapshot) |
| `intercom/me.json` | `GET /me` body (`app.id_code` = `{INTERCOM_APP_ID}`, region US) |
| `intercom/conversations.jsonl` | `GET /conversations/{{id}}` bodies, one per linked conversation |
| `intercom/eu/` | the EU workspace (`app.id_code` = `{INTERCOM_EU_APP_ID}`): `me.json` and `conversations.jsonl`, served under `/eu`; email `{self.eu_email_id or ""}` (tag `intercom_workspace = "eu"`) links its one conversation |
| `imports/read_email_guide.jsonl` | integration-guide shaped records for `auditkit import` (2026Q2, last one has no id) |
| `invalid/` | a truncated email page, a page whose `emails` is not a list, a record with wrong types, a truncated audit page |
| `archive/`, `dns/` | DKIM-signed copies of ~20 sent messages (.eml, mbox, Maildir) and the throw-away test key and TXT record to verify them offline; made by `python -m auditkit.archive_sample`, planted cases in `archive/expected.json` |
| `auditkit.toml` | demo config: company, reviewers, mailbox policies |
| `expected_findings.json` | the exact set of open findings `auditkit check --period 2026Q3` must report with `auditkit.toml`; an entry with `requires` needs that setting to be a violation at all, so a run without the file finds all the others |

## The company

- Mailboxes on `{DOMAIN}` (domain active, DKIM/SPF/MX/return-path verified):
  `support@` (Intercom Fin follow-ups, `gated_send`), `onboarding@` (onboarding bot,
  `gated_send`), `outreach@` (commercial outreach; `gated_send` until
  {iso(OUTREACH_MONITORED_AT)}, then `monitored`). `deals@{DEALS_DOMAIN}` is a tiny
  `autonomous` mailbox on a domain that is still `pending` with `dkim_verified: false`.
- Reviewers: {reviewers}.
  Their decisions are `oversight.approved` / `oversight.rejected` audit entries by the
  reviewers' oversight key with metadata `{{reviewer, reason}}`; `approved_by` is the
  reviewer's email.
- Every outbound message has an `email.sent` entry whose `actor_key_id` is the sending key.
  Delivered outbound mail has status `read` (the API has no sent/delivered status; delivery
  is `delivered_at`). Suppression entries and their `suppression.added` audit entries come
  from system actions (`actor_key_id` `system`).
- Everything not listed below is compliant: gated mail is approved by a listed reviewer
  (with a matching audit entry) before delivery, support mail links an Intercom conversation
  that exists, commercial mail has the postal address and an unsubscribe link, no message
  goes to a suppressed address, and no subject fakes a reply. Regular pending mail is younger
  than 72 h at period end.

## Planted violations (`expected_findings.json`)

| control | target type | target id | what was planted |
|---|---|---|---|
{rows}

Negative case (must NOT be a finding): outreach message `{self.notes.get("negative_cs003", "")}` on
2026-09-11 goes to an address suppressed on 2026-09-08, 3 business days earlier (within the
10-business-day allowance). Outreach mail after the switch to `monitored` has no approval by
design and is not an OVS-001 finding.

The PC-001 gap: outreach email `{self.notes.get("never_listed", "")}` (2026-09-24, monitored,
delivered) is counted by usage `emails_sent`, has its `email.sent` audit entry and its
`message.sent`/`message.delivered` webhook deliveries, but is in no file a listing serves
(it is not in `emails.jsonl`): the listing never returned it.

Each planted message breaks only the control(s) listed for it. In particular the OVS-003
message carries an `oversight.rejected` decision, so it is not also an OVS-001 case (OVS-001
is delivery while gated with no decision at all). The CS-004 message is a promotion: CAN-SPAM's
subject rule covers commercial mail, so a `Re:` on transactional support mail is not a finding.
"""  # noqa: E501  (markdown table rows do not wrap)


def config_toml() -> str:
    reviewers = "".join(f'    "{email}",\n' for _, email in REVIEWERS)
    return f"""# Demo configuration for the sample quarter (generated by auditkit.sample).
# Secrets never go here: use MULTIMAIL_API_KEY / INTERCOM_ACCESS_TOKEN
# (and INTERCOM_ACCESS_TOKEN_EU for the EU workspace).

[company]
name = "{COMPANY}"

[intercom]
app_id = "{INTERCOM_APP_ID}"
region = "us"

# Email tagged intercom_workspace = "eu" links a conversation in the EU workspace.
[intercom.workspaces.eu]
app_id = "{INTERCOM_EU_APP_ID}"
region = "eu"

[controls]
# Who may approve agent mail; approvals by anyone else are findings.
reviewers = [
{reviewers}]
# Mail may wait this long for a decision at period end before it is a finding.
pending_limit_hours = 72
# Suppression reasons (lower-case substrings) that record a failed delivery, not a
# request to stop: CS-003 does not count them as opt-outs.
delivery_failure_reasons = ["bounce"]
# Reasons that record a request to stop (read after the failure reasons). A late send to
# an address suppressed for any other reason, or none, is a review finding, not an open one.
opt_out_reasons = [
  "unsub", "opt", "complain", "spam", "abuse", "manual", "remov", "stop", "request",
]

[mailboxes."support@{DOMAIN}"]
classification = "transactional"
require_conversation_link = true

[mailboxes."onboarding@{DOMAIN}"]
classification = "transactional"

[mailboxes."outreach@{DOMAIN}"]
classification = "commercial"

[mailboxes."deals@{DEALS_DOMAIN}"]
classification = "commercial"

# A waiver looks like this (none is active in the sample, so the expected set stays exact):
# [[waivers]]
# control = "TR-001"
# target = "<email id>"
# justification = "Conversation deleted at the customer's request (GDPR erasure)."
# approver = "{REVIEWERS[0][1]}"
# expires = "2026-12-31"
"""
