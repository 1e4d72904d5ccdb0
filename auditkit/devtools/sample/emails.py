"""Emails and their bodies: one outbound message with its audit trail and outcome, inbound
replies, support/outreach wording, and the regular traffic of a day."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from auditkit.devtools.sample.base import Mailbox, iso
from auditkit.devtools.sample.intercom import Conversations
from auditkit.devtools.sample.world import (
    APPROVAL_REASONS,
    CAMPAIGNS,
    EU_SUPPORT_MESSAGE_FROM,
    MAX_DECISION_MINUTES,
    ONBOARDING_STEPS,
    OUTREACH_MONITORED_AT,
    PENDING_WINDOW_START,
    PERIOD_END,
    PHYSICAL_ADDRESS,
    REJECTION_REASONS,
    REVIEWERS,
    SCHEDULED_WINDOW_START,
    SUPPORT_TOPICS,
    UNSUBSCRIBE_URL,
)
from auditkit.multimail_terms import UNSENT_STATUSES


class Emails(Conversations):
    """Outbound mail (with decisions, delivery and bounces), inbound replies, regular traffic."""

    # -- one outbound message --------------------------------------------------------------
    def _latency(self) -> timedelta:
        minutes = math.exp(self.rng.gauss(math.log(25), 1.1))
        return timedelta(
            minutes=min(max(minutes, 1.0), MAX_DECISION_MINUTES),
            milliseconds=self.rng.randrange(1000),
        )

    def _outbound(
        self,
        mailbox: Mailbox,
        created: datetime,
        to: str,
        subject: str,
        markdown: str,
        tags: dict[str, str],
        *,
        outcome: str,
        reviewer: str | None = None,
        approved_at: datetime | None = None,
        delivered_at: datetime | None = None,
        decided_at: datetime | None = None,
        approval_entry: bool | None = None,
        send_key_id: str | None = None,
        approver_key_id: str | None = None,
        thread_id: str | None = None,
        email_id: str | None = None,
        attachments: list[dict[str, Any]] | None = None,
        reply_chance: float = 0.0,
        first_name: str = "",
    ) -> str:
        """Build one outbound record and its audit trail. Outcomes:
        approved (gated, decided then delivered), direct (not gated: delivered at once),
        unapproved (gated but delivered with no decision), rejected, pending, scheduled,
        cancelled, send_failed, bounced (approved, then a hard bounce)."""
        rng = self.rng
        email_id = email_id or self.ids.new(created)
        send_key_id = send_key_id or mailbox.key_id
        approver_key_id = approver_key_id or self.keys["oversight"]["id"]
        status = "read"  # the spec enum has no sent/delivered status; delivery is delivered_at
        bounced_at = bounce_type = None
        approved_by = None
        self._audit(
            created + timedelta(milliseconds=3),
            "email.sent",
            "email",
            email_id,
            send_key_id,
            {"mailbox_id": mailbox.id, "agent": mailbox.agent},
        )
        if outcome in ("approved", "scheduled", "send_failed", "bounced", "rejected"):
            reviewer = reviewer or rng.choice(REVIEWERS)[1]
            decided_at = decided_at or created + self._latency()
        if outcome in ("approved", "scheduled", "send_failed", "bounced"):
            assert decided_at is not None  # set just above
            approved_at = approved_at or decided_at
            approved_by = reviewer
            if approval_entry is not False:
                self._audit(
                    decided_at,
                    "oversight.approved",
                    "email",
                    email_id,
                    approver_key_id,
                    {"reviewer": reviewer, "reason": rng.choice(APPROVAL_REASONS)},
                )
            sent_at = decided_at + timedelta(seconds=rng.uniform(2, 20))
            if outcome == "approved":
                delivered_at = delivered_at or sent_at
            elif outcome == "scheduled":
                status = "scheduled"
            elif outcome == "send_failed":
                status = "send_failed"
            else:
                bounced_at, bounce_type = sent_at, "HardBounce"
                self._add_suppression(sent_at + timedelta(seconds=2), to, "hard_bounce", None)
        elif outcome == "rejected":
            assert decided_at is not None
            status = "rejected"
            self._audit(
                decided_at,
                "oversight.rejected",
                "email",
                email_id,
                approver_key_id,
                {"reviewer": reviewer, "reason": rng.choice(REJECTION_REASONS)},
            )
        elif outcome in ("direct", "unapproved"):
            delivered_at = delivered_at or created + timedelta(seconds=rng.uniform(2, 20))
        elif outcome == "pending":
            status = "pending_send_approval"
        elif outcome == "cancelled":
            status = "cancelled"
            self._audit(
                created + self._latency(),
                "email.cancelled",
                "email",
                email_id,
                send_key_id,
                {"mailbox_id": mailbox.id},
            )
        else:
            raise ValueError(f"unknown outcome {outcome}")
        record = {
            "id": email_id,
            "mailbox_id": mailbox.id,
            "direction": "outbound",
            "from": mailbox.address,
            "to": [to],
            "cc": [],
            "subject": subject,
            "received_at": iso(created),
            "thread_id": thread_id or self.ids.new(created),
            "markdown": markdown,
            "status": status,
            "has_attachments": bool(attachments),
            "attachments": attachments or [],
            "delivered_at": iso(delivered_at) if delivered_at else None,
            "bounced_at": iso(bounced_at) if bounced_at else None,
            "bounce_type": bounce_type,
            "approved_at": iso(approved_at) if approved_at else None,
            "approved_by": approved_by,
            "spam_score": rng.randint(0, 2),
            "spam_verdict": "clean",
            "tags": tags,
        }
        self.email_sink.push(created, email_id, record)
        if delivered_at or bounced_at or status not in UNSENT_STATUSES:
            self._count_usage(created, "emails_sent")
            self._deliver(created, "message.sent", email_id)
        self._deliver(delivered_at, "message.delivered", email_id)
        self._deliver(bounced_at, "message.bounced", email_id)
        self.counters.outbound += 1
        self.counters.by_status[status] = self.counters.by_status.get(status, 0) + 1
        if delivered_at is not None and rng.random() < reply_chance:
            self._inbound_reply(mailbox, record, to, delivered_at, first_name)
        return email_id

    def _inbound_reply(
        self,
        mailbox: Mailbox,
        outbound: dict[str, Any],
        customer: str,
        after: datetime,
        first_name: str,
    ) -> None:
        received = after + timedelta(minutes=self.rng.uniform(20, 30 * 60))
        reply_id = self.ids.new(received)
        self.email_sink.push(
            received,
            reply_id,
            {
                "id": reply_id,
                "mailbox_id": mailbox.id,
                "direction": "inbound",
                "from": customer,
                "to": [mailbox.address],
                "subject": "Re: " + outbound["subject"],
                "status": self.rng.choice(("read", "read", "unread")),
                "spam_score": self.rng.randint(0, 2),
                "spam_verdict": "clean",
                "received_at": iso(received),
                "thread_id": outbound["thread_id"],
                "has_attachments": False,
                "delivered_at": None,
                "bounced_at": None,
                "bounce_type": None,
            },
        )
        self._count_usage(received, "emails_received")
        self.counters.inbound += 1

    # -- message content -----------------------------------------------------------------
    def _support_content(self, first: str) -> tuple[str, str, list[dict[str, Any]]]:
        self.order_seq += 1
        subject_t, body_t = self.rng.choice(SUPPORT_TOPICS)
        values = {
            "order": self.order_seq,
            "case": f"R-{self.order_seq}",
            "first": first,
            "tracking": f"1Z{self.rng.getrandbits(40):010X}",
            "amount": f"{self.rng.randint(12, 480)}.{self.rng.randint(0, 99):02d}",
        }
        subject = subject_t.format(**values)
        body = (
            f"Hi {first},\n\nThanks for chatting with us today. {body_t.format(**values)}\n\n"
            "If anything looks wrong, just reply to this email.\n\n— Northwind Support"
        )
        attachments = []
        if subject.startswith("Invoice copy"):
            attachments = [
                {
                    "name": f"invoice-{self.order_seq}.pdf",
                    "size": self.rng.randint(30000, 90000),
                    "content_type": "application/pdf",
                }
            ]
        return subject, body, attachments

    def _outreach_content(
        self,
        first: str,
        to: str,
        *,
        address: bool = True,
        opt_out: bool = True,
        campaign: tuple[str, str, str] | None = None,
    ) -> tuple[str, str, str]:
        slug, subject, pitch = campaign or self.rng.choice(CAMPAIGNS)
        token = f"{self.rng.getrandbits(64):016x}"
        footer = ["", "---"]
        if address:
            footer.append(PHYSICAL_ADDRESS)
        if opt_out:
            footer.append(
                f"You receive this because you ordered from us. "
                f"[Unsubscribe]({UNSUBSCRIBE_URL}{token}) from Northwind marketing email."
            )
        else:
            footer.append("Questions? Our team is at support@northwind.example.")
        body = (
            f"Hi {first},\n\n{pitch}\n\nBrowse the range at https://northwind.example/catalog.\n\n"
            "— The Northwind team\n" + "\n".join(footer)
        )
        return slug, subject, body

    # -- regular traffic -------------------------------------------------------------------
    def _regular(self, created: datetime) -> None:
        rng = self.rng
        roll = rng.random()
        kind = "support" if roll < 0.5 else "onboarding" if roll < 0.72 else "outreach"
        mailbox = self.mailboxes[kind]
        gated = kind != "outreach" or created < OUTREACH_MONITORED_AT
        outcome = self._regular_outcome(created, gated)
        if outcome == "bounced":
            first, to = self._reserved_customer()
        else:
            first, to = self._random_customer()
        email_id = self.ids.new(created)
        if kind == "support":
            self.regular_support += 1
            eu = (
                self.eu_email_id is None
                and self.regular_support >= EU_SUPPORT_MESSAGE_FROM
                and outcome == "approved"
            )
            subject, body, attachments = self._support_content(first)
            conversation_id = self._conversation_id()
            self._conversation(
                conversation_id,
                email_id,
                first,
                to,
                created - timedelta(minutes=rng.uniform(5, 240)),
                subject,
                resolved_by_fin=rng.random() < 0.6,
                delivered_as="customer_initiated",
                eu=eu,
            )
            tags = {
                "intercom_conversation_id": conversation_id,
                "agent": "fin",
                "category": "support_followup",
            }
            if eu:
                tags["intercom_workspace"] = "eu"
                self.eu_email_id = email_id
            self._outbound(
                mailbox,
                created,
                to,
                subject,
                body,
                tags,
                outcome=outcome,
                email_id=email_id,
                attachments=attachments,
                reply_chance=0.08,
                first_name=first,
            )
        elif kind == "onboarding":
            step = rng.randrange(len(ONBOARDING_STEPS))
            subject_t, text = ONBOARDING_STEPS[step]
            subject = subject_t.format(first=first)
            body = (
                f"Hi {first},\n\n{text}\n\nReply to this email if you need a hand.\n\n"
                "— Northwind Onboarding"
            )
            tags = {
                "agent": "onboarding-bot",
                "category": "onboarding",
                "sequence_step": str(step + 1),
            }
            if rng.random() < 0.85:
                conversation_id = self._conversation_id()
                self._conversation(
                    conversation_id,
                    email_id,
                    first,
                    to,
                    created - timedelta(minutes=rng.uniform(5, 600)),
                    subject,
                    resolved_by_fin=rng.random() < 0.5,
                    delivered_as="automated",
                )
                tags["intercom_conversation_id"] = conversation_id
            self._outbound(
                mailbox,
                created,
                to,
                subject,
                body,
                tags,
                outcome=outcome,
                email_id=email_id,
                reply_chance=0.03,
                first_name=first,
            )
        else:
            slug, subject, body = self._outreach_content(first, to)
            tags = {"agent": "outreach-bot", "category": "promotion", "campaign": slug}
            self._outbound(
                mailbox,
                created,
                to,
                subject,
                body,
                tags,
                outcome=outcome,
                email_id=email_id,
                reply_chance=0.04,
                first_name=first,
            )

    def _regular_outcome(self, created: datetime, gated: bool) -> str:
        roll = self.rng.random()
        if not gated:
            return "bounced" if roll < 0.01 else "direct"
        if PENDING_WINDOW_START <= created < PERIOD_END:
            if roll < 0.12:
                return "pending"
            if created >= SCHEDULED_WINDOW_START and roll < 0.16:
                return "scheduled"
        roll = self.rng.random()
        if roll < 0.05:
            return "rejected"
        if roll < 0.06:
            return "cancelled"
        if roll < 0.065:
            return "send_failed"
        if roll < 0.075:
            return "bounced"
        return "approved"
