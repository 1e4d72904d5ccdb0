"""Row builders for report tests: typed rows with the NOT NULL provenance columns filled in,
and a small store covering every derived column the pack shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from auditkit.config import Settings
from auditkit.findings import ControlResult, Finding, Period
from auditkit.store import Store, canonical_json, sha256_hex
from tests import builders

HARVESTED = datetime(2026, 10, 1, 6, 0, tzinfo=UTC)
Q3 = Period("2026Q3", datetime(2026, 7, 1).date(), datetime(2026, 9, 30).date())


def with_provenance(row: dict[str, Any], run_id: str = "run-1") -> dict[str, Any]:
    return builders.with_provenance(row, run_id, harvested_at=HARVESTED)


def email(
    id: str,
    created: datetime,
    *,
    mailbox_id: str = "mb-1",
    to: list[str] | None = None,
    subject: str = "Your order",
    body: str = "Hello",
    status: str = "read",
    approved_by: str | None = "reviewer@northwind.test",
    approved_at: datetime | None = None,
    delivered_at: datetime | None = None,
    bounced_at: datetime | None = None,
    conversation_id: str | None = None,
    dkim_verified: bool | None = None,
    from_address: str = "agent@northwind.test",
    direction: str = "outbound",
    **extra: Any,
) -> dict[str, Any]:
    row = {
        "id": id,
        "mailbox_id": mailbox_id,
        "direction": direction,
        "from_address": from_address,
        "to_addresses": to if to is not None else ["customer@example.com"],
        "cc_addresses": None,
        "subject": subject,
        "status": status,
        "created_at": created,
        "body_markdown": body,
        "approved_by": approved_by,
        "approved_at": approved_at
        if approved_at is not None
        else (created + timedelta(minutes=7) if approved_by else None),
        "delivered_at": delivered_at,
        "bounced_at": bounced_at,
        "conversation_id": conversation_id,
        "dkim_verified": dkim_verified,
        "source_shape": "v1",
        "is_final": True,
        "first_harvested_at": HARVESTED,
        **extra,
    }
    return with_provenance(row)


def audit(
    id: str,
    seq: int,
    action: str,
    resource_id: str,
    created: datetime,
    metadata: dict[str, Any] | None = None,
    resource_type: str = "email",
    actor: str | None = "key-agent",
) -> dict[str, Any]:
    row = {
        "id": id,
        "action": action,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "actor_key_id": actor,
        "metadata": canonical_json(metadata or {}),
        "created_at": created,
        "chain_seq": seq,
        "chain_hash": sha256_hex(f"{seq}{id}"),
    }
    return with_provenance(row)


def at(day: int, hour: int = 9, minute: int = 0, month: int = 8) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def settings(**overrides: Any) -> Settings:
    return Settings(company_name="Northwind Supply Co.", intercom_app_id="abc123de").with_overrides(
        **overrides
    )


def populate(store: Store) -> None:
    """Eight outbound messages across two mailboxes, one mode change, Intercom links, DKIM by
    flag and by domain, and a hostile body; plus one inbound message that must never appear."""
    store.upsert(
        "multimail_account", [with_provenance({"id": "acct-1", "name": "Northwind (account)"})]
    )
    store.upsert(
        "multimail_mailboxes",
        [
            with_provenance(
                {"id": "mb-1", "address": "agent@northwind.test", "oversight_mode": "gated_send"}
            ),
            with_provenance(
                {"id": "mb-2", "address": "sales@promo.test", "oversight_mode": "autonomous"}
            ),
        ],
    )
    store.upsert(
        "multimail_domains",
        [
            with_provenance({"id": "d-1", "domain": "northwind.test", "dkim_verified": True}),
            with_provenance({"id": "d-2", "domain": "promo.test", "dkim_verified": False}),
        ],
    )
    store.upsert(
        "intercom_conversations",
        [
            with_provenance(
                {
                    "id": "conv-1",
                    "found": True,
                    "http_status": 200,
                    "state": "closed",
                    "contact_email": "customer@example.com",
                    "resolved_by": "ai_agent",
                    "fetched_at": HARVESTED,
                    "app_id": None,
                }
            ),
            with_provenance(
                {"id": "conv-404", "found": False, "http_status": 404, "fetched_at": HARVESTED}
            ),
        ],
    )
    emails = [
        email("em-01", at(3), conversation_id="conv-1", delivered_at=at(3, 9, 10)),
        email(
            "em-02",
            at(3, 11),
            status="rejected",
            approved_by=None,
            subject='=HYPERLINK("http://evil")',
        ),
        email(
            "em-03",
            at(5),
            to=["Bob, Jr. <bob@example.com>"],
            subject='He said "hi", then\nleft',
            delivered_at=at(5, 9, 30),
            conversation_id="conv-404",
        ),
        email(
            "em-04",
            at(6),
            mailbox_id="mb-2",
            from_address="sales@promo.test",
            approved_by=None,
            delivered_at=at(6, 9, 1),
            subject="-50% today",
            conversation_id="conv-unfetched",
        ),
        email(
            "em-05",
            at(20),
            mailbox_id="mb-2",
            from_address="sales@promo.test",
            approved_by=None,
            delivered_at=at(20, 9, 1),
            subject="+1 offer",
            dkim_verified=True,
        ),
        email(
            "em-06", at(21), status="pending_send_approval", approved_by=None, subject="@mention"
        ),
        email(
            "em-07",
            at(22),
            approved_at=at(21),
            delivered_at=at(22, 10),
            subject="approved before created",
        ),
        email("em-08", at(23), status="cancelled", approved_by=None, subject="\tcancelled"),
        email("em-09", at(24), body="<script>alert(1)</script>"),
        email(
            "em-in", at(4), direction="inbound", approved_by=None, subject="inbound must not appear"
        ),
        email("em-old", at(15, month=6), subject="before the period"),
    ]
    store.upsert("multimail_emails", emails)
    store.upsert(
        "multimail_audit_log",
        [
            audit("al-1", 1, "email.sent", "em-01", at(3), {"mailbox_id": "mb-1"}),
            audit(
                "al-2",
                2,
                "oversight.approved",
                "em-01",
                at(3, 9, 7),
                {"reviewer": "reviewer@northwind.test"},
                actor="key-reviewer",
            ),
            audit(
                "al-3",
                3,
                "oversight.rejected",
                "em-02",
                at(3, 12),
                {"reviewer": "boss@northwind.test", "reason": "=cmd|' /C calc'!A0"},
                actor="key-reviewer",
            ),
            audit(
                "al-4",
                4,
                "mailbox.oversight_mode_changed",
                "mb-2",
                at(10),
                {"from": "gated_send", "to": "autonomous", "changed_by": "ops"},
                resource_type="mailbox",
            ),
            audit("al-5", 5, "email.cancelled", "em-08", at(23, 10), {}),
        ],
    )


def results() -> list[ControlResult]:
    return [
        ControlResult(
            id="OV-001",
            title="Outbound mail approved before sending",
            severity="high",
            status="fail",
            findings=(
                Finding(
                    "OV-001",
                    "email",
                    "em-04",
                    "Sent without approval from a gated mailbox.",
                    {"mailbox_id": "mb-2", "mode": "gated_send"},
                ),
                Finding(
                    "OV-001",
                    "email",
                    "em-07",
                    "Approval recorded before the message existed.",
                    {"approved_at": "2026-08-21T09:00:00Z", "note": "x" * 3000},
                ),
            ),
            checked=9,
            rationale="A person approves what an agent sends.",
            reference="House policy §2",
        ),
        ControlResult(
            id="CS-04",
            title="Postal address in commercial mail",
            severity="medium",
            status="fail",
            findings=(
                Finding(
                    "CS-04",
                    "email",
                    "em-05",
                    "No postal address.",
                    {"body_sha256": "ab"},
                    state="waived",
                    waiver={
                        "justification": "=SUM(1)",
                        "approver": "legal",
                        "expires": "2027-01-01",
                    },
                ),
            ),
            checked=2,
            rationale="16 CFR 316.4(a)(5)(iii).",
            reference="can-spam.md CS-04",
        ),
        ControlResult(
            id="DK-001", title="DKIM passes", severity="medium", status="pass", checked=9
        ),
        ControlResult(
            id="AL-001",
            title="Audit log unchanged",
            severity="high",
            status="fail",
            findings=(Finding("AL-001", "audit_entry", "al-3", "Entry changed at source.", {}),),
            checked=5,
        ),
    ]


def demo_store(path: str | None = None) -> Store:
    """The populated store: at `path`, or a private scratch store deleted on close."""
    store = Store(path) if path is not None else builders.ScratchStore()
    populate(store)
    return store
