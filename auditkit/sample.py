"""Seeded generator of the sample quarter (2026Q3, Northwind Supply Co.) and of benchmark sets.

`python -m auditkit.sample --messages N --out DIR [--seed 42]` writes the layout described in
ARCHITECTURE.md "Sample data". The same seed and N always give byte-identical files: one
`random.Random` drives everything, JSON keys are sorted and records are written in a fixed
order. Messages are generated day by day and written to the JSONL files as soon as every
earlier record is out, so 1M-message sets stream with memory bounded by about two days of
events (plus the small suppression and key lists).

Every message is compliant except the planted violations listed in `expected_findings.json`
and `README.md`, so a control run over the sample must find exactly that set.
"""

from __future__ import annotations

import argparse
import heapq
import json
import logging
import math
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from auditkit.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_SEED = 42
DEFAULT_MESSAGES = 3000
MIN_MESSAGES = 50

COMPANY = "Northwind Supply Co."
SLUG = "northwind"
PHYSICAL_ADDRESS = "Northwind Supply Co., 1200 Harbor Blvd, Suite 400, Oakland, CA 94607"
DOMAIN = "northwind.example"
DEALS_DOMAIN = "northwind-deals.example"
INTERCOM_APP_ID = "nw4x8q2c"
# One compliant support follow-up's conversation lives in the company's EU workspace: the
# first approved regular support message from this one on. High enough that the 400-message
# test quarter has none (its harvest configures only the default workspace).
INTERCOM_EU_APP_ID = "nw7e5u1k"
EU_SUPPORT_MESSAGE_FROM = 1000
UNSUBSCRIBE_URL = "https://northwind.example/unsubscribe?u="

PERIOD_START = datetime(2026, 7, 1, tzinfo=UTC)
PERIOD_END = datetime(2026, 10, 1, tzinfo=UTC)  # exclusive
FIRST_DAY = date(2026, 6, 27)  # a few days of June and October test period boundaries
LAST_DAY = date(2026, 10, 3)
OUTREACH_MONITORED_AT = datetime(2026, 8, 15, 9, 30, tzinfo=UTC)
# Regular pending mail is younger than this at period end (pending_limit_hours = 72).
PENDING_WINDOW_START = datetime(2026, 9, 28, 6, 0, tzinfo=UTC)
SCHEDULED_WINDOW_START = datetime(2026, 9, 29, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Approvals take at most this long, so every event exists before the data "snapshot".
MAX_DECISION_MINUTES = 36 * 60
SNAPSHOT_AT = datetime(2026, 10, 6, 8, 0, tzinfo=UTC)

REVIEWERS = (
    ("Priya Raman", "priya.raman@northwind.example"),
    ("Daniel Okafor", "daniel.okafor@northwind.example"),
    ("Sofia Lindqvist", "sofia.lindqvist@northwind.example"),
    ("Tomás Becker", "tomas.becker@northwind.example"),
)
NOT_A_REVIEWER = "intern@northwind.example"
MODE_CHANGED_BY = "ops@northwind.example"

FIRST_NAMES = (
    "Dana",
    "Luis",
    "Amara",
    "Kenji",
    "Chloé",
    "Ravi",
    "Marta",
    "Owen",
    "Ines",
    "Tariq",
    "Hannah",
    "Mateo",
    "Yuki",
    "Grace",
    "Pavel",
    "Zoe",
    "Emeka",
    "Lena",
    "Samir",
    "Ava",
)
LAST_NAMES = (
    "Ortiz",
    "Nguyen",
    "Schmidt",
    "Adeyemi",
    "Kowalski",
    "Haddad",
    "Silva",
    "Murphy",
    "Tanaka",
    "Rossi",
    "Johansson",
    "Patel",
    "Dubois",
    "Okoro",
    "García",
    "Novak",
)
CUSTOMER_DOMAINS = ("example.com", "example.net", "example.org")

APPROVAL_REASONS = (
    "Order details match the Intercom conversation.",
    "Accurate and on-brand.",
    "Checked the tracking number against the carrier.",
    "Refund amount confirmed with billing.",
    "Fine to send.",
    "Offer terms checked against the campaign brief.",
)
REJECTION_REASONS = (
    "Promises a delivery date we cannot guarantee.",
    "Quotes the wrong refund amount.",
    "Tone is too pushy for this customer.",
    "Mentions another customer's order.",
)
CAMPAIGNS = (
    (
        "autumn-shelving",
        "Autumn catalog: 15% off warehouse shelving",
        "Our autumn catalog is out. Until the end of the month, warehouse shelving is 15% off "
        "with code SHELF15 at checkout.",
    ),
    (
        "packaging-sale",
        "Bulk packaging sale ends Friday",
        "Stock up before peak season: bulk cartons and mailers are discounted through Friday.",
    ),
    (
        "loyalty-2026",
        "An exclusive offer for long-time customers",
        "As a thank-you for ordering with us, here is an exclusive offer: free freight on your "
        "next pallet order.",
    ),
    (
        "safety-gear",
        "New safety gear range, launch prices inside",
        "Our new range of safety gloves and high-visibility vests is live, with launch prices "
        "for the first two weeks.",
    ),
)

SUPPORT_TOPICS = (
    (
        "Tracking number for order #{order}",
        "Your order #{order} shipped this morning. The tracking number is {tracking}; the carrier "
        "shows delivery within two business days.",
    ),
    (
        "Refund confirmation for order #{order}",
        "As requested, here is the confirmation of your refund for order #{order}. The amount of "
        "${amount} was returned to your original payment method and should appear within 5 days.",
    ),
    (
        "Invoice copy for order #{order}",
        "Attached is a copy of the invoice for order #{order}, as you asked in chat.",
    ),
    (
        "Update on your return request #{case}",
        "We received the items from your return request #{case}. Our warehouse has checked them "
        "and the credit note is on its way.",
    ),
    (
        "Delivery window for order #{order}",
        "Your order #{order} is booked for delivery on the morning slot. The driver will call 30 "
        "minutes before arrival.",
    ),
)
ONBOARDING_STEPS = (
    (
        "Welcome to Northwind Supply, {first}",
        "Welcome aboard. Your account is ready and your team can sign in at northwind.example.",
    ),
    (
        "Setting up your Northwind account",
        "To finish setting up your account, add a delivery address and invite your colleagues.",
    ),
    (
        "Your first order checklist",
        "Before your first order: confirm your billing contact and your loading-dock hours so "
        "deliveries arrive smoothly.",
    ),
)
TEAMMATES = (("5123401", "Priya Raman"), ("5123402", "Daniel Okafor"), ("5123403", "Jo Whitaker"))
FIN_BOT_ID = "8123456"

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CROCKFORD_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]


# -- small formatting helpers -------------------------------------------------------------
def iso(ts: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a `Z`, the form the API uses."""
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def epoch_ms(ts: datetime) -> int:
    # Integer arithmetic: float timestamps can land one millisecond below the ISO string.
    return (ts - _EPOCH) // timedelta(milliseconds=1)


def _dumps(record: Any) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _write_json(path: Path, value: Any) -> None:
    path.write_text(
        json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def _at(day: date, hour: int, minute: int, second: int = 0, ms: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, ms * 1000, tzinfo=UTC)


class IdFactory:
    """ULID-looking ids: 10 characters of millisecond time, 16 of seeded randomness."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def new(self, ts: datetime) -> str:
        value = (epoch_ms(ts) << 80) | self.rng.getrandbits(80)
        # 130 bits as 13 ten-bit chunks, two Crockford characters each, most significant first.
        return "".join(_CROCKFORD_PAIRS[(value >> shift) & 1023] for shift in range(120, -1, -10))


@dataclass(frozen=True)
class Mailbox:
    key: str  # short name used in this module
    id: str
    address: str
    display_name: str
    agent: str
    category: str
    key_id: str  # the API key its agent sends with


@dataclass
class Planted:
    """One planted violation: when, how to build it, and the findings it must produce."""

    created: datetime
    build: Callable[[datetime], str | None]
    # (control_id, target_type, note[, requires]); target filled on build. `requires` names
    # the auditkit.toml setting without which no tool could call it a violation.
    findings: list[tuple[str, ...]]


class _TimeOrderedSink:
    """Writes JSONL records in (timestamp, id) order while they arrive slightly out of order:
    records wait in a heap until everything older than `flush_before` has been produced."""

    def __init__(self, fh: IO[str]) -> None:
        self.fh = fh
        self.heap: list[tuple[int, str, str]] = []
        self.written = 0

    def push(self, ts: datetime, record_id: str, record: dict[str, Any]) -> None:
        heapq.heappush(self.heap, (epoch_ms(ts), record_id, _dumps(record)))

    def flush_before(self, ts: datetime | None) -> None:
        limit = math.inf if ts is None else epoch_ms(ts)
        while self.heap and self.heap[0][0] < limit:
            self.fh.write(heapq.heappop(self.heap)[2] + "\n")
            self.written += 1


@dataclass
class _Counters:
    outbound: int = 0
    inbound: int = 0
    audit: int = 0
    conversations: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


class QuarterGenerator:
    """Builds the whole dataset into `out`; `run()` returns a summary of what it wrote."""

    def __init__(
        self, out: Path, *, messages: int = DEFAULT_MESSAGES, seed: int = DEFAULT_SEED
    ) -> None:
        if messages < MIN_MESSAGES:
            raise ConfigError(
                f"--messages must be at least {MIN_MESSAGES}: the planted violations and the "
                "audit-log mutations need some regular traffic around them"
            )
        self.out = out
        self.messages = messages
        self.seed = seed
        self.rng = random.Random(seed)
        self.ids = IdFactory(self.rng)
        self.counters = _Counters()
        self.regular_support = 0
        self.eu_email_id: str | None = None
        self.expected: list[dict[str, str]] = []
        self.suppressions: list[dict[str, Any]] = []
        self.key_last_used: dict[str, datetime] = {}
        self.key_ids: set[str] = set()
        self.conversation_seq = 0
        self.order_seq = 4400
        self.pool_size = max(400, messages // 2)
        self.reserved_seq = self.pool_size  # addresses above the pool are never picked at random
        self.notes: dict[str, str] = {}  # README lines per planted id

    # -- customers ---------------------------------------------------------------------
    def _customer(self, index: int) -> tuple[str, str]:
        """(first name, address) of customer `index`; the index keeps addresses unique."""
        first = FIRST_NAMES[index % len(FIRST_NAMES)]
        last = LAST_NAMES[(index // len(FIRST_NAMES)) % len(LAST_NAMES)]
        domain = CUSTOMER_DOMAINS[index % len(CUSTOMER_DOMAINS)]
        local = f"{first}.{last}{index}".lower()
        for plain, accented in (("e", "é"), ("a", "á"), ("c", "ç")):
            local = local.replace(accented, plain)
        return first, f"{local}@{domain}"

    def _random_customer(self) -> tuple[str, str]:
        return self._customer(self.rng.randrange(self.pool_size))

    def _reserved_customer(self) -> tuple[str, str]:
        """A customer no random message ever goes to (suppressed, bounced or planted)."""
        self.reserved_seq += 1
        return self._customer(self.reserved_seq)

    # -- fixed account objects -----------------------------------------------------------
    def _build_account_objects(self) -> None:
        rng, ids = self.rng, self.ids
        self.account = {
            "id": ids.new(datetime(2026, 2, 3, 17, 4, tzinfo=UTC)),
            "name": COMPANY,
            "slug": SLUG,
            "plan": "pro",
            "oversight_email": f"oversight@{DOMAIN}",
            "physical_address": PHYSICAL_ADDRESS,
            "monthly_email_quota": 50000,
            "emails_sent_this_month": 0,
            "max_mailboxes": 25,
            "storage_used_bytes": 0,
            "max_storage_bytes": 5 * 1024**3,
            "is_active": True,
            "sending_disabled": False,
            "sending_disabled_reason": None,
        }
        key_specs = [
            (
                "fin",
                "Intercom Fin follow-ups",
                ["read", "send"],
                datetime(2026, 3, 2, 10, 15, tzinfo=UTC),
            ),
            (
                "onboarding",
                "Onboarding bot",
                ["read", "send"],
                datetime(2026, 3, 2, 10, 21, tzinfo=UTC),
            ),
            ("outreach", "Outreach bot", ["read", "send"], datetime(2026, 4, 14, 9, 2, tzinfo=UTC)),
            (
                "oversight",
                "Reviewers' oversight console",
                ["read", "oversight"],
                datetime(2026, 3, 2, 11, 40, tzinfo=UTC),
            ),
            (
                "harvester",
                "auditkit harvester",
                ["read", "admin"],
                datetime(2026, 6, 20, 8, 0, tzinfo=UTC),
            ),
            (
                "legacy",
                "Legacy ops key",
                ["read", "send", "oversight"],
                datetime(2026, 2, 10, 16, 45, tzinfo=UTC),
            ),
        ]
        self.keys: dict[str, dict[str, Any]] = {}
        for short, name, scopes, created in key_specs:
            self.keys[short] = {
                "id": ids.new(created),
                "name": name,
                "prefix": f"mm_live_{rng.getrandbits(16):04x}",
                "scopes": scopes,
                "created_at": iso(created),
                "last_used_at": None,
                "is_active": True,
            }
        mailbox_specs = [
            (
                "support",
                f"support@{DOMAIN}",
                "Northwind Support (Fin)",
                "fin",
                "support_followup",
                "fin",
                datetime(2026, 3, 2, 10, 30, tzinfo=UTC),
            ),
            (
                "onboarding",
                f"onboarding@{DOMAIN}",
                "Northwind Onboarding",
                "onboarding-bot",
                "onboarding",
                "onboarding",
                datetime(2026, 3, 2, 10, 35, tzinfo=UTC),
            ),
            (
                "outreach",
                f"outreach@{DOMAIN}",
                "Northwind Supply",
                "outreach-bot",
                "promotion",
                "outreach",
                datetime(2026, 4, 14, 9, 10, tzinfo=UTC),
            ),
            (
                "deals",
                f"deals@{DEALS_DOMAIN}",
                "Northwind Deals",
                "outreach-bot",
                "promotion",
                "outreach",
                datetime(2026, 5, 6, 13, 0, tzinfo=UTC),
            ),
        ]
        self.mailboxes: dict[str, Mailbox] = {}
        self.mailbox_records: list[dict[str, Any]] = []
        modes = {
            "support": "gated_send",
            "onboarding": "gated_send",
            "outreach": "monitored",
            "deals": "autonomous",
        }
        for short, address, display, agent, category, key, created in mailbox_specs:
            mailbox_id = ids.new(created)
            self.mailboxes[short] = Mailbox(
                short, mailbox_id, address, display, agent, category, self.keys[key]["id"]
            )
            self.mailbox_records.append(
                {
                    "id": mailbox_id,
                    "tenant_id": self.account["id"],
                    "address": address,
                    "display_name": display,
                    "oversight_mode": modes[short],
                    "auto_cc": None,
                    "auto_bcc": f"oversight@{DOMAIN}" if modes[short] == "monitored" else None,
                    "forward_inbound": 0,
                    "webhook_url": None,
                    "oversight_webhook_url": None,
                    # No postal address here: CAN-SPAM checks read body + signature, and
                    # the planted CS-001 message must lack the address in both.
                    "signature_block": f"— {display}" if short != "deals" else None,
                    "default_gate_timing": "gate_first",
                    "created_at": epoch_ms(created),
                    "is_active": 1,
                }
            )
        self.domains = [
            {
                "id": ids.new(datetime(2026, 2, 4, 9, 0, tzinfo=UTC)),
                "domain": DOMAIN,
                "status": "active",
                "dkim_verified": True,
                "spf_verified": True,
                "mx_verified": True,
                "return_path_verified": True,
                "dns_records": {"dkim": {"type": "TXT", "name": f"mm1._domainkey.{DOMAIN}"}},
                "created_at": iso(datetime(2026, 2, 4, 9, 0, tzinfo=UTC)),
                "verified_at": iso(datetime(2026, 2, 4, 9, 41, tzinfo=UTC)),
            },
            {
                "id": ids.new(datetime(2026, 5, 6, 12, 40, tzinfo=UTC)),
                "domain": DEALS_DOMAIN,
                "status": "pending",
                "dkim_verified": False,
                "spf_verified": False,
                "mx_verified": False,
                "return_path_verified": False,
                "dns_records": {"dkim": {"type": "TXT", "name": f"mm1._domainkey.{DEALS_DOMAIN}"}},
                "created_at": iso(datetime(2026, 5, 6, 12, 40, tzinfo=UTC)),
                "verified_at": None,
            },
        ]
        self.webhooks = [
            {
                "id": ids.new(datetime(2026, 3, 3, 8, 0, tzinfo=UTC)),
                "url": "https://hooks.northwind.example/multimail/events",
                "events": [
                    "message.sent",
                    "message.delivered",
                    "message.bounced",
                    "message.complained",
                ],
                "mailbox_id": None,
                "created_at": iso(datetime(2026, 3, 3, 8, 0, tzinfo=UTC)),
            },
            {
                "id": ids.new(datetime(2026, 3, 3, 8, 5, tzinfo=UTC)),
                "url": "https://hooks.northwind.example/multimail/oversight",
                "events": ["oversight.pending", "oversight.approved", "oversight.rejected"],
                "mailbox_id": self.mailboxes["support"].id,
                "created_at": iso(datetime(2026, 3, 3, 8, 5, tzinfo=UTC)),
            },
        ]

    # -- audit entries -------------------------------------------------------------------
    def _audit(
        self,
        ts: datetime,
        action: str,
        resource_type: str,
        resource_id: str,
        actor_key_id: str,
        metadata: dict[str, Any] | None,
    ) -> str:
        entry_id = self.ids.new(ts)
        self.audit_sink.push(
            ts,
            entry_id,
            {
                "id": entry_id,
                "action": action,
                "resource_type": resource_type,
                "resource_id": resource_id,
                "actor_key_id": actor_key_id,
                "metadata": metadata,
                "created_at": iso(ts),
            },
        )
        self.counters.audit += 1
        if actor_key_id in self.key_ids:
            self.key_last_used[actor_key_id] = max(ts, self.key_last_used.get(actor_key_id, ts))
        return entry_id

    def _add_suppression(
        self, ts: datetime, address: str, reason: str, mailbox_id: str | None
    ) -> str:
        suppression_id = self.ids.new(ts)
        self.suppressions.append(
            {
                "id": suppression_id,
                "email_address": address,
                "reason": reason,
                "mailbox_id": mailbox_id,
                "created_at": iso(ts),
            }
        )
        # System actions (bounce hooks, the hosted unsubscribe page) have no API key.
        self._audit(
            ts + timedelta(milliseconds=5),
            "suppression.added",
            "suppression",
            suppression_id,
            "system",
            {"email_address": address, "reason": reason},
        )
        return suppression_id

    # -- conversations -------------------------------------------------------------------
    def _conversation_id(self) -> str:
        self.conversation_seq += 1
        return str(215470000000000 + self.conversation_seq * 1000 + self.rng.randrange(1000))

    def _conversation(
        self,
        conversation_id: str,
        email_id: str,
        first: str,
        address: str,
        opened: datetime,
        topic: str,
        *,
        resolved_by_fin: bool,
        delivered_as: str,
        eu: bool = False,
    ) -> None:
        rng = self.rng
        app_id = INTERCOM_EU_APP_ID if eu else INTERCOM_APP_ID
        created = int(opened.timestamp())
        answered = created + rng.randint(20, 300)
        closed = answered + rng.randint(60, 1800)
        contact_id = f"65f1{rng.getrandbits(80):020x}"
        fin = {
            "type": "bot",
            "id": FIN_BOT_ID,
            "name": "Fin",
            "email": f"operator+{app_id}@intercom.io",
        }
        if resolved_by_fin:
            answer_author = {**fin, "from_ai_agent": True, "is_ai_answer": True}
            closer = {**fin, "from_ai_agent": False, "is_ai_answer": False}
            assignee, teammates = 0, []
            ai_agent = {
                "source_type": "workflow",
                "source_title": "Fin – Orders and returns",
                "last_answer_type": "ai_answer",
                "resolution_state": rng.choice(("confirmed_resolution", "assumed_resolution")),
                "rating": rng.choice((4, 5, 5, None)),
            }
        else:
            teammate_id, teammate_name = rng.choice(TEAMMATES)
            answer_author = {
                "type": "admin",
                "id": teammate_id,
                "name": teammate_name,
                "email": f"{teammate_name.split()[0].lower()}@{DOMAIN}",
                "from_ai_agent": False,
                "is_ai_answer": False,
            }
            closer = answer_author
            assignee, teammates = int(teammate_id), [{"type": "admin", "id": teammate_id}]
            ai_agent = {
                "source_type": "workflow",
                "source_title": "Fin – Orders and returns",
                "last_answer_type": "ai_answer",
                "resolution_state": "escalated",
                "rating": None,
            }
        parts = [
            {
                "type": "conversation_part",
                "id": str(45763000000 + self.conversation_seq * 10 + 1),
                "part_type": "comment",
                "body": f"<p>{topic}</p>",
                "created_at": answered,
                "author": answer_author,
            },
            {
                "type": "conversation_part",
                "id": str(45763000000 + self.conversation_seq * 10 + 2),
                "part_type": "close",
                "body": None,
                "created_at": closed,
                "author": {"type": closer["type"], "id": closer["id"], "name": closer["name"]},
            },
        ]
        record = {
            "type": "conversation",
            "id": conversation_id,
            "created_at": created,
            "updated_at": closed,
            "open": False,
            "state": "closed",
            "admin_assignee_id": assignee,
            "team_assignee_id": 0,
            "source": {
                "type": "conversation",
                "id": str(403900000 + self.conversation_seq),
                "delivered_as": delivered_as,
                "subject": "",
                "body": f"<p>Hi, question about {topic[:60].lower()}</p>",
                "author": {"type": "user", "id": contact_id, "name": first, "email": address},
            },
            "contacts": {
                "type": "contact.list",
                "contacts": [
                    {
                        "type": "contact",
                        "id": contact_id,
                        "external_id": f"cust_{self.conversation_seq:05d}",
                    }
                ],
            },
            "teammates": {"type": "admin.list", "teammates": teammates},
            "tags": {
                "type": "tag.list",
                "tags": [{"type": "tag", "id": "9012345", "name": "email-follow-up"}],
            },
            "custom_attributes": {"multimail_email_id": email_id},
            "statistics": {
                "type": "conversation_statistics",
                "last_close_at": closed,
                "last_closed_by_id": closer["id"],
                "count_conversation_parts": len(parts),
            },
            "conversation_parts": {
                "type": "conversation_part.list",
                "total_count": len(parts),
                "conversation_parts": parts,
            },
            "ai_agent_participated": True,
            "ai_agent": ai_agent,
        }
        (self.eu_conversations_fh if eu else self.conversations_fh).write(_dumps(record) + "\n")
        self.counters.conversations += 1

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

    # -- planted violations --------------------------------------------------------------
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
            _at(d(2026, 7, 14), 15, 2, 11, 204),
            lambda t: self._support_planted(t, outcome="unapproved"),
            (
                "OVS-001",
                "email",
                "support message delivered with no approval and no decision while gated",
            ),
        )
        plant(
            _at(d(2026, 8, 10), 16, 40, 5, 17),
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
            _at(d(2026, 7, 22), 10, 5, 40, 880),
            approved_after_delivery,
            ("OVS-002", "email", "approved_at is 47 minutes after delivered_at"),
        )

        def rejected_but_delivered(t: datetime) -> str:
            return self._support_planted(
                t, outcome="rejected", delivered_at=t + timedelta(hours=2, minutes=3)
            )

        plant(
            _at(d(2026, 8, 4), 13, 27, 9, 51),
            rejected_but_delivered,
            (
                "OVS-003",
                "email",
                "status rejected (with an oversight.rejected entry) but delivered_at set",
            ),
        )

        legacy = self.keys["legacy"]["id"]
        plant(
            _at(d(2026, 8, 19), 22, 48, 30, 402),
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
            _at(d(2026, 9, 2), 9, 14, 2, 730),
            lambda t: self._support_planted(t, outcome="approved", reviewer=NOT_A_REVIEWER),
            (
                "OVS-004",
                "email",
                f"approved_by {NOT_A_REVIEWER}, who is not a listed reviewer",
                "controls.reviewers",
            ),
        )
        plant(
            _at(d(2026, 9, 20), 11, 3, 44, 118),
            lambda t: self._support_planted(t, outcome="pending"),
            (
                "OVS-006",
                "email",
                "pending_send_approval since 2026-09-20, beyond the 72 h limit at period end",
            ),
        )

        plant(
            _at(d(2026, 7, 28), 14, 31, 7, 300),
            lambda t: self._outreach_planted(t, address=False),
            ("CS-001", "email", "outreach footer has the unsubscribe link but no postal address"),
        )
        plant(
            _at(d(2026, 8, 26), 15, 2, 58, 640),
            lambda t: self._outreach_planted(t, opt_out=False),
            (
                "CS-002",
                "email",
                "outreach message has the postal address but no unsubscribe link or opt-out text",
            ),
        )
        plant(
            _at(d(2026, 9, 1), 16, 20, 0, 505),
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

        plant(_at(d(2026, 9, 11), 17, 5, 12, 90), within_opt_out_allowance)
        # CAN-SPAM's subject rule covers commercial mail (§ 7704(a)(2)): a promotion dressed
        # as a reply to a customer who never wrote.
        plant(
            _at(d(2026, 7, 30), 9, 41, 19, 12),
            lambda t: self._outreach_planted(t, subject="Re: your order #4411"),
            (
                "CS-004",
                "email",
                "promotion with subject 'Re: your order #4411' starts a new thread "
                "(no earlier message, no prior exchange with the recipient)",
            ),
        )
        plant(
            _at(d(2026, 8, 21), 18, 12, 44, 333),
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
            _at(d(2026, 8, 12), 11, 55, 3, 777),
            lambda t: self._support_planted(t, outcome="approved", conversation=None),
            (
                "TR-001",
                "email",
                "support message without an intercom_conversation_id tag",
                'mailboxes."support@northwind.example".require_conversation_link',
            ),
        )
        plant(
            _at(d(2026, 9, 8), 14, 9, 27, 615),
            lambda t: self._support_planted(t, outcome="approved", conversation="999999999"),
            ("TR-002", "email", "links Intercom conversation 999999999, which does not exist"),
        )

        plant(
            _at(d(2026, 7, 9), 12, 0, 31, 446),
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
            _at(d(2026, 9, 15), 8, 30, 16, 250),
            approval_entry_without_approval,
            (
                "AL-002",
                "email",
                "oversight.approved entry exists but the email is cancelled, never approved",
            ),
        )

        # Suppressions the CS-003 cases rely on (created up front, before their messages).
        self.cs003_suppressions = [
            (_at(d(2026, 8, 3), 19, 22, 5, 0), unsubscribed[1]),
            (_at(d(2026, 9, 8), 15, 40, 0, 0), recently_unsubscribed[1]),
        ]
        return plants

    # -- the run ---------------------------------------------------------------------------
    def _day_counts(self) -> list[tuple[date, int]]:
        """Regular messages per day: weekdays weigh 1, weekends 0.35, boundary days 0.5."""
        days = [FIRST_DAY + timedelta(days=i) for i in range((LAST_DAY - FIRST_DAY).days + 1)]
        weights = []
        for day in days:
            w = 1.0 if day.weekday() < 5 else 0.35
            if not (PERIOD_START.date() <= day < PERIOD_END.date()):
                w *= 0.5
            weights.append(w)
        total = sum(weights)
        exact = [self.messages * w / total for w in weights]
        counts = [int(x) for x in exact]
        # Largest remainder, ties by date: deterministic and sums to exactly `messages`.
        order = sorted(range(len(days)), key=lambda i: (-(exact[i] - counts[i]), i))
        for i in order[: self.messages - sum(counts)]:
            counts[i] += 1
        return list(zip(days, counts, strict=True))

    def _day_times(self, day: date, count: int) -> list[datetime]:
        """`count` distinct millisecond timestamps in the day, busiest in US business hours."""
        start = epoch_ms(_at(day, 0, 0))
        seen: set[int] = set()
        out = []
        for _ in range(count):
            hour = min(max(self.rng.gauss(18.0, 3.5), 0.0), 23.999)  # ~11:00 Pacific in UTC
            ms = start + int(hour * 3_600_000) + self.rng.randrange(1000)
            while ms in seen:
                ms += 1
            seen.add(ms)
            out.append(datetime.fromtimestamp(ms / 1000, tz=UTC))
        return sorted(out)

    def run(self) -> dict[str, Any]:
        out = self.out
        for sub in ("multimail", "intercom/eu", "imports", "invalid"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        self._build_account_objects()
        self.key_ids = {k["id"] for k in self.keys.values()}
        with (
            (out / "multimail" / "emails.jsonl").open(
                "w", encoding="utf-8", newline="\n"
            ) as emails_fh,
            (out / "multimail" / "audit_log.jsonl").open(
                "w", encoding="utf-8", newline="\n"
            ) as audit_fh,
            (out / "intercom" / "conversations.jsonl").open(
                "w", encoding="utf-8", newline="\n"
            ) as conv_fh,
            (out / "intercom" / "eu" / "conversations.jsonl").open(
                "w", encoding="utf-8", newline="\n"
            ) as eu_conv_fh,
        ):
            self.email_sink = _TimeOrderedSink(emails_fh)
            self.audit_sink = _TimeOrderedSink(audit_fh)
            self.conversations_fh = conv_fh
            self.eu_conversations_fh = eu_conv_fh
            self._setup_history()
            plants = self._planted()
            for ts, address in self.cs003_suppressions:
                self._add_suppression(ts, address, "unsubscribe", self.mailboxes["outreach"].id)
            self._background_suppressions()
            by_day: dict[date, list[Planted]] = {}
            for p in plants:
                by_day.setdefault(p.created.date(), []).append(p)
            self.messages = max(self.messages - len(plants), 0)
            for day, count in self._day_counts():
                self.email_sink.flush_before(_at(day, 0, 0))
                self.audit_sink.flush_before(_at(day, 0, 0))
                events: list[tuple[datetime, int, Planted | None]] = [
                    (t, 0, None) for t in self._day_times(day, count)
                ]
                events += [(p.created, i + 1, p) for i, p in enumerate(by_day.get(day, []))]
                for ts, _, planted in sorted(events, key=lambda e: (e[0], e[1])):
                    if planted is None:
                        self._regular(ts)
                        continue
                    target = planted.build(ts)
                    for control_id, target_type, *rest in planted.findings:
                        self._expect(control_id, target_type, str(target), *rest)
                if day == OUTREACH_MONITORED_AT.date():
                    entry = self._audit(
                        OUTREACH_MONITORED_AT,
                        "mailbox.oversight_mode_changed",
                        "mailbox",
                        self.mailboxes["outreach"].id,
                        self.keys["outreach"]["id"],
                        {"from": "gated_send", "to": "monitored", "changed_by": MODE_CHANGED_BY},
                    )
                    self._expect(
                        "OVS-007",
                        "audit_entry",
                        entry,
                        "outreach@ (commercial) loosened from gated_send to monitored mid-quarter",
                    )
            self.email_sink.flush_before(None)
            self.audit_sink.flush_before(None)
        self._write_small_files()
        return {
            "outbound": self.counters.outbound,
            "inbound": self.counters.inbound,
            "audit_entries": self.counters.audit,
            "conversations": self.counters.conversations,
            "suppressions": len(self.suppressions),
            "expected_findings": len(self.expected),
            "statuses": dict(sorted(self.counters.by_status.items())),
        }

    def _setup_history(self) -> None:
        """Audit entries from before the sample window: key creation."""
        for key in self.keys.values():
            created = datetime.fromisoformat(key["created_at"].replace("Z", "+00:00"))
            # Keys were created in the dashboard with an operator approval code: no key acted.
            self._audit(
                created,
                "api_key.created",
                "api_key",
                key["id"],
                "system",
                {"name": key["name"], "scopes": key["scopes"]},
            )

    def _background_suppressions(self) -> None:
        """Opt-outs and complaints from addresses the regular traffic never writes to."""
        start = datetime(2026, 4, 1, tzinfo=UTC)
        span = (datetime(2026, 9, 25, tzinfo=UTC) - start).total_seconds()
        reasons = ("unsubscribe", "unsubscribe", "unsubscribe", "spam_complaint", "hard_bounce")
        picks = []
        for _ in range(24):
            ts = start + timedelta(
                seconds=int(self.rng.uniform(0, span)), milliseconds=self.rng.randrange(1000)
            )
            picks.append((ts, self._reserved_customer()[1], self.rng.choice(reasons)))
        for ts, address, reason in sorted(picks):
            scope = self.mailboxes["outreach"].id if reason == "unsubscribe" else None
            self._add_suppression(ts, address, reason, scope)

    # -- small files -------------------------------------------------------------------------
    def _write_small_files(self) -> None:
        out = self.out
        mm = out / "multimail"
        for key in self.keys.values():
            used = self.key_last_used.get(key["id"])
            key["last_used_at"] = iso(used) if used else None
        self.keys["harvester"]["last_used_at"] = iso(SNAPSHOT_AT)
        _write_json(mm / "account.json", self.account)
        _write_json(mm / "mailboxes.json", {"mailboxes": self.mailbox_records})
        _write_json(mm / "api_keys.json", {"api_keys": list(self.keys.values())})
        _write_json(mm / "domains.json", {"domains": self.domains})
        _write_json(mm / "webhooks.json", {"subscriptions": self.webhooks})
        self.suppressions.sort(key=lambda s: (s["created_at"], s["id"]))
        _write_json(mm / "suppressions.json", {"suppressions": self.suppressions})
        self._expect(
            "OVS-005",
            "api_key",
            self.keys["legacy"]["id"],
            "Legacy ops key holds both send and oversight scopes",
        )
        self._plant_mutations(mm)
        self.expected.sort(key=lambda f: (f["control_id"], f["target_type"], f["target_id"]))
        _write_json(out / "expected_findings.json", self.expected)
        _write_json(out / "intercom" / "me.json", _intercom_me(INTERCOM_APP_ID, "US"))
        _write_json(out / "intercom" / "eu" / "me.json", _intercom_me(INTERCOM_EU_APP_ID, "EU"))
        self._write_imports(out / "imports")
        self._write_invalid(out / "invalid")
        (out / "auditkit.toml").write_text(_config_toml(), encoding="utf-8")
        (out / "README.md").write_text(self._readme(), encoding="utf-8")

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
        _write_json(
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
            "".join(_dumps(r) + "\n" for r in records), encoding="utf-8"
        )

    def _write_invalid(self, folder: Path) -> None:
        page = _dumps(
            {"emails": [{"id": "01J0000000000000000000BAD1", "subject": "cut"}], "cursor": "1751"}
        )
        (folder / "emails_page_truncated.json").write_text(page[: len(page) // 2], encoding="utf-8")
        _write_json(
            folder / "emails_page_not_a_list.json",
            {"emails": {"id": "01J0000000000000000000BAD2"}, "cursor": None},
        )
        _write_json(
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
        audit = _dumps(
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
Do not edit by hand: `tests/test_sample.py` regenerates it and fails on any difference.
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

Each planted message breaks only the control(s) listed for it. In particular the OVS-003
message carries an `oversight.rejected` decision, so it is not also an OVS-001 case (OVS-001
is delivery while gated with no decision at all). The CS-004 message is a promotion: CAN-SPAM's
subject rule covers commercial mail, so a `Re:` on transactional support mail is not a finding.
"""  # noqa: E501  (markdown table rows do not wrap)


def _intercom_me(app_id: str, region: str) -> dict[str, Any]:
    """The `GET /me` body of the harvester's admin in one workspace."""
    return {
        "type": "admin",
        "id": "5123499",
        "name": "Audit Harvester",
        "email": f"audit@{DOMAIN}",
        "email_verified": True,
        "app": {
            "type": "app",
            "id_code": app_id,
            "name": COMPANY,
            "created_at": 1770138000,
            "secure": True,
            "identity_verification": False,
            "timezone": "America/Los_Angeles" if region == "US" else "Europe/Dublin",
            "region": region,
        },
        "avatar": {"type": "avatar", "image_url": None},
        "has_inbox_seat": False,
    }


def _config_toml() -> str:
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


def generate(
    out: Path, *, messages: int = DEFAULT_MESSAGES, seed: int = DEFAULT_SEED
) -> dict[str, Any]:
    """Write a complete dataset into `out` (created; existing generated files are replaced)."""
    generator = QuarterGenerator(out, messages=messages, seed=seed)  # validates first
    for sub in ("multimail", "intercom", "imports", "invalid"):
        if (out / sub).is_dir():
            shutil.rmtree(out / sub)
    summary = generator.run()
    logger.info("sample data written to %s: %s", out, summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m auditkit.sample",
        description="Generate the Northwind 2026Q3 sample quarter (or a large benchmark set).",
    )
    parser.add_argument(
        "--messages",
        type=int,
        default=DEFAULT_MESSAGES,
        help=f"outbound messages in total, planted ones included (default {DEFAULT_MESSAGES})",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"RNG seed (default {DEFAULT_SEED})"
    )
    args = parser.parse_args(argv)
    try:
        summary = generate(args.out, messages=args.messages, seed=args.seed)
    except ConfigError as exc:
        parser.error(str(exc))
    print(json.dumps(summary, sort_keys=True))  # noqa: T201  (CLI entry point output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
