"""The planted violations and the findings they must produce (`expected_findings.json`),
including the audit-log mutations applied between two harvests."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from auditkit.devtools.sample.base import (
    IdFactory,
    Planted,
    TimeOrderedSink,
    at,
    write_json,
)
from auditkit.devtools.sample.emails import Emails
from auditkit.devtools.sample.world import (
    CAMPAIGNS,
    NOT_A_REVIEWER,
    OUTREACH_MONITORED_AT,
    REVIEWERS,
)
from auditkit.errors import ConfigError


class Violations(Emails):
    """Planted messages, each built on its day, and the expected finding set."""

    def _expect(
        self,
        control_id: str,
        target_type: str,
        target_id: str,
        note: str,
        requires: str | None = None,
    ) -> None:
        entry = {
            "control_id": control_id,
            "target_type": target_type,
            "target_id": target_id,
            "state": "open",
            "note": note,
        }
        if requires:
            entry["requires"] = requires
        self.expected.append(entry)

    def _support_planted(
        self,
        created: datetime,
        *,
        conversation: str | None = "new",
        subject: str | None = None,
        **kwargs: Any,
    ) -> str:
        first, to = self._reserved_customer()
        email_id = self.ids.new(created)
        default_subject, body, attachments = self._support_content(first)
        tags = {"agent": "fin", "category": "support_followup"}
        if conversation == "new":
            conversation = self._conversation_id()
            self._conversation(
                conversation,
                email_id,
                first,
                to,
                created - timedelta(minutes=42),
                default_subject,
                resolved_by_fin=True,
                delivered_as="customer_initiated",
            )
        if conversation is not None:
            tags["intercom_conversation_id"] = conversation
        return self._outbound(
            self.mailboxes["support"],
            created,
            to,
            subject or default_subject,
            body,
            tags,
            email_id=email_id,
            attachments=attachments,
            **kwargs,
        )

    def _outreach_planted(
        self,
        created: datetime,
        *,
        to: tuple[str, str] | None = None,
        address: bool = True,
        opt_out: bool = True,
        mailbox: str = "outreach",
        subject: str | None = None,
        **kwargs: Any,
    ) -> str:
        first, to_address = to or self._reserved_customer()
        slug, default_subject, body = self._outreach_content(
            first, to_address, address=address, opt_out=opt_out, campaign=CAMPAIGNS[0]
        )
        subject = subject or default_subject
        tags = {"agent": "outreach-bot", "category": "promotion", "campaign": slug}
        gated = mailbox == "outreach" and created < OUTREACH_MONITORED_AT
        kwargs.setdefault("outcome", "approved" if gated else "direct")
        return self._outbound(
            self.mailboxes[mailbox], created, to_address, subject, body, tags, **kwargs
        )

    def _planted(self) -> list[Planted]:
        """The planted violations, in a fixed order, each built when its day comes up."""
        d = date
        unsubscribed = self._reserved_customer()
        recently_unsubscribed = self._reserved_customer()
        plants: list[Planted] = []

        def plant(
            created: datetime,
            build: Callable[[datetime], str | None],
            *findings: tuple[str, ...],
        ) -> None:
            plants.append(Planted(created, build, list(findings)))

        plant(
            at(d(2026, 7, 14), 15, 2, 11, 204),
            lambda t: self._support_planted(t, outcome="unapproved"),
            (
                "OVS-001",
                "email",
                "support message delivered with no approval and no decision while gated",
            ),
        )
        plant(
            at(d(2026, 8, 10), 16, 40, 5, 17),
            lambda t: self._outreach_planted(t, outcome="unapproved"),
            (
                "OVS-001",
                "email",
                "outreach message delivered without approval on 2026-08-10, while gated",
            ),
        )

        def approved_after_delivery(t: datetime) -> str:
            delivered = t + timedelta(minutes=12)
            return self._support_planted(
                t,
                outcome="approved",
                decided_at=delivered + timedelta(minutes=47),
                delivered_at=delivered,
            )

        plant(
            at(d(2026, 7, 22), 10, 5, 40, 880),
            approved_after_delivery,
            ("OVS-002", "email", "approved_at is 47 minutes after delivered_at"),
        )

        def rejected_but_delivered(t: datetime) -> str:
            return self._support_planted(
                t, outcome="rejected", delivered_at=t + timedelta(hours=2, minutes=3)
            )

        plant(
            at(d(2026, 8, 4), 13, 27, 9, 51),
            rejected_but_delivered,
            (
                "OVS-003",
                "email",
                "status rejected (with an oversight.rejected entry) but delivered_at set",
            ),
        )

        legacy = self.keys["legacy"]["id"]
        plant(
            at(d(2026, 8, 19), 22, 48, 30, 402),
            lambda t: self._support_planted(
                t, outcome="approved", send_key_id=legacy, approver_key_id=legacy, reviewer=legacy
            ),
            (
                "OVS-004",
                "email",
                "sent by the Legacy ops key and approved by the same key (self-approval)",
            ),
        )
        plant(
            at(d(2026, 9, 2), 9, 14, 2, 730),
            lambda t: self._support_planted(t, outcome="approved", reviewer=NOT_A_REVIEWER),
            (
                "OVS-004",
                "email",
                f"approved_by {NOT_A_REVIEWER}, who is not a listed reviewer",
                "controls.reviewers",
            ),
        )
        plant(
            at(d(2026, 9, 20), 11, 3, 44, 118),
            lambda t: self._support_planted(t, outcome="pending"),
            (
                "OVS-006",
                "email",
                "pending_send_approval since 2026-09-20, beyond the 72 h limit at period end",
            ),
        )

        plant(
            at(d(2026, 7, 28), 14, 31, 7, 300),
            lambda t: self._outreach_planted(t, address=False),
            ("CS-001", "email", "outreach footer has the unsubscribe link but no postal address"),
        )
        plant(
            at(d(2026, 8, 26), 15, 2, 58, 640),
            lambda t: self._outreach_planted(t, opt_out=False),
            (
                "CS-002",
                "email",
                "outreach message has the postal address but no unsubscribe link or opt-out text",
            ),
        )
        plant(
            at(d(2026, 9, 1), 16, 20, 0, 505),
            lambda t: self._outreach_planted(t, to=unsubscribed),
            (
                "CS-003",
                "email",
                "sent to an address suppressed (unsubscribe) on 2026-08-03, "
                "more than 10 business days earlier",
            ),
        )

        def within_opt_out_allowance(t: datetime) -> None:
            self.notes["negative_cs003"] = self._outreach_planted(t, to=recently_unsubscribed)

        plant(at(d(2026, 9, 11), 17, 5, 12, 90), within_opt_out_allowance)
        # CAN-SPAM's subject rule covers commercial mail (§ 7704(a)(2)): a promotion dressed
        # as a reply to a customer who never wrote.
        plant(
            at(d(2026, 7, 30), 9, 41, 19, 12),
            lambda t: self._outreach_planted(t, subject="Re: your order #4411"),
            (
                "CS-004",
                "email",
                "promotion with subject 'Re: your order #4411' starts a new thread "
                "(no earlier message, no prior exchange with the recipient)",
            ),
        )
        plant(
            at(d(2026, 8, 21), 18, 12, 44, 333),
            lambda t: self._outreach_planted(t, mailbox="deals", outcome="direct"),
            (
                "CS-005",
                "email",
                "sent from deals@northwind-deals.example, whose domain is not DKIM-verified",
            ),
            (
                "ID-001",
                "email",
                "sending domain northwind-deals.example is pending, dkim_verified false",
            ),
        )
        plant(
            at(d(2026, 8, 12), 11, 55, 3, 777),
            lambda t: self._support_planted(t, outcome="approved", conversation=None),
            (
                "TR-001",
                "email",
                "support message without an intercom_conversation_id tag",
                'mailboxes."support@northwind.example".require_conversation_link',
            ),
        )
        plant(
            at(d(2026, 9, 8), 14, 9, 27, 615),
            lambda t: self._support_planted(t, outcome="approved", conversation="999999999"),
            ("TR-002", "email", "links Intercom conversation 999999999, which does not exist"),
        )

        plant(
            at(d(2026, 7, 9), 12, 0, 31, 446),
            lambda t: self._support_planted(t, outcome="approved", approval_entry=False),
            (
                "AL-002",
                "email",
                "approved_by/approved_at set but no oversight.approved audit entry",
            ),
        )

        def approval_entry_without_approval(t: datetime) -> str:
            email_id = self._support_planted(t, outcome="cancelled")
            self._audit(
                t + timedelta(minutes=31),
                "oversight.approved",
                "email",
                email_id,
                self.keys["oversight"]["id"],
                {"reviewer": REVIEWERS[2][1], "reason": "Fine to send."},
            )
            return email_id

        plant(
            at(d(2026, 9, 15), 8, 30, 16, 250),
            approval_entry_without_approval,
            (
                "AL-002",
                "email",
                "oversight.approved entry exists but the email is cancelled, never approved",
            ),
        )

        def never_listed(t: datetime) -> str:
            """A monitored outreach message MultiMail sent and counted (usage, its audit
            entry, its webhook deliveries) but whose mailbox listing never returns it. Built
            on a side stream of randomness and into no file, so every other record of the
            sample is what it was before the gap was planted."""
            listed_sink, rng, ids = self.email_sink, self.rng, self.ids
            self.rng = random.Random(f"{self.seed}:never-listed")
            self.ids = IdFactory(self.rng)
            self.email_sink = TimeOrderedSink(io.StringIO())
            try:
                # Its own customer, beyond every index the pool or reserved ones reach.
                to = self._customer(10 * self.pool_size + 1)
                email_id = self._outreach_planted(t, to=to, outcome="direct")
            finally:
                self.email_sink, self.rng, self.ids = listed_sink, rng, ids
                self.counters.outbound -= 1
                self.counters.by_status["read"] -= 1
            self.notes["never_listed"] = email_id
            self._expect(
                "PC-001",
                "day",
                t.date().isoformat(),
                "usage emails_sent and the webhook deliveries count one more email sent that "
                "day than the listings returned",
            )
            return email_id

        plants.append(
            Planted(
                at(d(2026, 9, 24), 15, 12, 7, 321),
                never_listed,
                [
                    (
                        "PC-001",
                        "email",
                        "its email.sent audit entry exists, but no mailbox listing returns it",
                    )
                ],
                listed=False,
            )
        )

        # Suppressions the CS-003 cases rely on (created up front, before their messages).
        self.cs003_suppressions = [
            (at(d(2026, 8, 3), 19, 22, 5, 0), unsubscribed[1]),
            (at(d(2026, 9, 8), 15, 40, 0, 0), recently_unsubscribed[1]),
        ]
        return plants

    def _plant_mutations(self, mm: Path) -> None:
        """Pick one oversight.approved and one email.sent entry of compliant support mail
        (never a planted message) for the between-harvests tampering."""
        planted_ids = {f["target_id"] for f in self.expected} | set(self.notes.values())
        approved = sent = None
        with (mm / "audit_log.jsonl").open(encoding="utf-8") as fh:
            for line in fh:
                entry = json.loads(line)
                if entry["created_at"] < "2026-08-01" or entry["resource_id"] in planted_ids:
                    continue
                if entry["metadata"] is None or entry["resource_type"] != "email":
                    continue
                if approved is None and entry["action"] == "oversight.approved":
                    approved = entry
                elif (
                    sent is None
                    and entry["action"] == "email.sent"
                    and entry["metadata"].get("agent") == "fin"
                    and (approved is None or entry["resource_id"] != approved["resource_id"])
                ):
                    sent = entry
                if approved and sent:
                    break
        if approved is None or sent is None:
            raise ConfigError(
                "too few messages to plant the audit-log mutations; use more --messages"
            )
        write_json(
            mm / "mutations.json",
            {
                "description": "Source-side changes the sandbox applies between two harvests "
                "(SandboxServer.apply_mutations): one approval reason rewritten, "
                "one send record deleted.",
                "mutations": [
                    {
                        "op": "set",
                        "collection": "audit_log",
                        "id": approved["id"],
                        "path": ["metadata", "reason"],
                        "value": "Approved after review (reason edited later).",
                    },
                    {"op": "delete", "collection": "audit_log", "id": sent["id"]},
                ],
            },
        )
        self._expect(
            "AL-001",
            "audit_entry",
            approved["id"],
            "oversight.approved reason changed at the source between harvests (mutations.json)",
        )
        self._expect(
            "AL-001",
            "audit_entry",
            sent["id"],
            "email.sent entry removed at the source between harvests (mutations.json)",
        )
