"""Both read_email shapes → one row model; the other resources; bad records."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest

from auditkit.normalise import (
    RecordError,
    normalise_account,
    normalise_api_key,
    normalise_audit_entry,
    normalise_email,
    normalise_mailbox,
    normalise_pending,
    normalise_suppression,
    normalise_webhook,
    parse_timestamp,
)
from auditkit.store import canonical_json
from tests.builders import ScratchStore

V1 = {
    "id": "01JX0000000000000000000001",
    "from": "agent@northwind.example",
    "to": ["dana@example.com"],
    "cc": [],
    "subject": "Your refund",
    "received_at": "2026-07-03T10:15:00Z",
    "thread_id": "thr_1",
    "markdown": "Hello **Dana**",
    "status": "read",
    "has_attachments": False,
    "attachments": [],
    "delivered_at": "2026-07-03T10:20:00.123Z",
    "bounced_at": None,
    "bounce_type": None,
    "approved_at": "2026-07-03T10:18:00Z",
    "approved_by": "ops@northwind.example",
    "spam_score": 1,
    "spam_verdict": "clean",
    "tags": {"intercom_conversation_id": "215471234567890", "agent": "fin-followup"},
    "x_future_field": {"kept": True},
}

GUIDE = {
    "message_id": "msg_abc123",
    "from": "support-bot@northwind.example",
    "to": "dana@example.com",
    "subject": "Following up",
    "body": "Thanks for your patience",
    "status": "delivered",
    "created_at": 1783073700000,  # epoch ms
    "delivered_at": None,
    "decision": {
        "reviewer": "lee@northwind.example",
        "decision": "approve",
        "note": "ok",
        "decided_at": 1783073760,
    },
    "dkim_verified": True,
    "metadata": {"source": "intercom", "conversation_id": "215470000000001", "agent": "fin"},
}


def table_columns(table: str) -> set[str]:
    with ScratchStore() as store:  # as the account sees it: the store adds `account`
        return {d[0] for d in store.con.execute(f"SELECT * FROM {table} LIMIT 0").description}


def test_v1_shape_maps_every_column() -> None:
    row = normalise_email(V1, mailbox_id="mbx_1", direction="outbound")
    assert set(row) == table_columns("multimail_emails") - {
        "run_id",
        "harvested_at",
        "first_harvested_at",
    }
    assert row["id"] == V1["id"] and row["mailbox_id"] == "mbx_1" and row["direction"] == "outbound"
    assert row["from_address"] == "agent@northwind.example" and row["to_addresses"] == [
        "dana@example.com"
    ]
    assert row["created_at"] == datetime(2026, 7, 3, 10, 15, tzinfo=UTC)
    assert row["delivered_at"] == datetime(2026, 7, 3, 10, 20, 0, 123000, tzinfo=UTC)
    assert row["approved_by"] == "ops@northwind.example"
    assert row["decision"] is None and row["dkim_verified"] is None
    assert row["conversation_id"] == "215471234567890" and row["agent"] == "fin-followup"
    assert row["body_markdown"] == "Hello **Dana**"
    assert row["source_shape"] == "v1" and row["is_final"] is True
    assert json.loads(row["raw"])["x_future_field"] == {"kept": True}
    assert row["raw"] == canonical_json(V1)
    assert row["raw_sha256"] == hashlib.sha256(row["raw"].encode()).hexdigest()


def test_guide_shape_maps_decision_metadata_and_epoch_times() -> None:
    row = normalise_email(GUIDE)
    assert row["id"] == "msg_abc123" and row["source_shape"] == "guide"
    assert row["to_addresses"] == ["dana@example.com"]
    assert row["created_at"] == datetime.fromtimestamp(1783073700, tz=UTC)
    assert row["approved_by"] == "lee@northwind.example"
    assert row["approved_at"] == datetime.fromtimestamp(1783073760, tz=UTC)
    assert row["decision"] == "approved" and row["decision_note"] == "ok"
    assert row["dkim_verified"] is True
    assert row["conversation_id"] == "215470000000001" and row["agent"] == "fin"
    # `status: delivered` without a time keeps the status and leaves the time empty.
    assert row["status"] == "delivered" and row["delivered_at"] is None
    assert row["body_markdown"] == "Thanks for your patience"


def test_custom_conversation_key() -> None:
    record = {**V1, "tags": {"ticket": "42"}}
    assert normalise_email(record, conversation_key="ticket")["conversation_id"] == "42"


@pytest.mark.parametrize(
    ("status", "delivered", "final"),
    [
        ("pending_send_approval", None, False),
        ("scheduled", None, False),
        ("rejected", None, True),
        ("cancelled", None, True),
        ("send_failed", None, True),
        ("read", "2026-07-03T10:20:00Z", True),
        ("read", None, False),
    ],
)
def test_is_final(status: str, delivered: str | None, final: bool) -> None:
    record = {**V1, "status": status, "delivered_at": delivered}
    assert normalise_email(record)["is_final"] is final


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({k: v for k, v in V1.items() if k != "id"}, "no id"),
        ({**V1, "id": 17}, "not a non-empty string"),
        ({**V1, "to": 5}, "to is int"),
        ({**V1, "received_at": "yesterday"}, "not an ISO-8601"),
        ({**V1, "tags": ["a"]}, "tags is list"),
        ({**V1, "spam_score": "high"}, "spam_score"),
        ({**V1, "spam_score": 2**31}, "spam_score is 2147483648, outside the 32-bit"),
        ({**V1, "spam_score": -(2**31) - 1}, "spam_score .* outside the 32-bit"),
        ({**V1, "spam_score": float("inf")}, "spam_score is inf, not an integer"),
        ({**V1, "spam_score": float("nan")}, "spam_score is nan, not an integer"),
        (["not", "an", "object"], "not a JSON object"),
    ],
)
def test_bad_records_raise_record_error_with_one_line_reason(record: object, reason: str) -> None:
    with pytest.raises(RecordError, match=reason) as info:
        normalise_email(record)
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)


def test_spam_scores_at_the_32_bit_bounds_load_into_the_store() -> None:
    """The bounds _int accepts are the store's: both load in one batch (a value past them
    used to fail the batch's Arrow build, losing every row in it)."""
    rows = [
        {
            **normalise_email(
                {**V1, "id": f"em_{n}", "spam_score": score},
                mailbox_id="mbx_1",
                direction="outbound",
            ),
            "run_id": "r1",
            "harvested_at": datetime(2026, 7, 3, tzinfo=UTC),
            "first_harvested_at": datetime(2026, 7, 3, tzinfo=UTC),
        }
        for n, score in enumerate([2**31 - 1, -(2**31), 3.0])
    ]
    with ScratchStore() as store:
        assert store.upsert("multimail_emails", rows) == 3
        scores = store.query("SELECT spam_score FROM multimail_emails ORDER BY id")
    assert [s for (s,) in scores] == [2**31 - 1, -(2**31), 3]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-07-03T10:15:00Z", datetime(2026, 7, 3, 10, 15, tzinfo=UTC)),
        ("2026-07-03T12:15:00+02:00", datetime(2026, 7, 3, 10, 15, tzinfo=UTC)),
        ("2026-07-03T10:15:00", datetime(2026, 7, 3, 10, 15, tzinfo=UTC)),
        (1783073700, datetime.fromtimestamp(1783073700, tz=UTC)),
        (1783073700000, datetime.fromtimestamp(1783073700, tz=UTC)),
        ("1783073700000", datetime.fromtimestamp(1783073700, tz=UTC)),
        (None, None),
    ],
)
def test_parse_timestamp(value: object, expected: datetime | None) -> None:
    assert parse_timestamp(value, "t") == expected


def test_other_resources_fit_their_tables() -> None:
    cases = [
        (
            normalise_account,
            "multimail_account",
            {
                "id": "acc_1",
                "name": "Northwind",
                "physical_address": None,
                "is_active": True,
                "sending_disabled": False,
            },
        ),
        (
            normalise_mailbox,
            "multimail_mailboxes",
            {
                "id": "mbx_1",
                "address": "a@x",
                "oversight_mode": "gated_send",
                "created_at": 1767225600000,
                "is_active": 1,
            },
        ),
        (
            normalise_api_key,
            "multimail_api_keys",
            {
                "id": "key_1",
                "scopes": ["read", "admin"],
                "created_at": "2026-01-01T00:00:00Z",
                "is_active": True,
            },
        ),
        (
            normalise_webhook,
            "multimail_webhooks",
            {
                "id": "wh_1",
                "url": "https://h",
                "events": ["message.sent"],
                "signing_secret": "whsec_x",
            },
        ),
        (
            normalise_suppression,
            "multimail_suppressions",
            {"email_address": "x@y", "reason": "unsubscribe", "created_at": "2026-07-01T00:00:00Z"},
        ),
        (
            normalise_pending,
            "multimail_pending",
            {
                "id": "em_1",
                "mailbox_id": "mbx_1",
                "to": ["x@y"],
                "received_at": "2026-07-01T00:00:00Z",
            },
        ),
    ]
    for fn, table, record in cases:
        row = fn(record)
        assert set(row) <= table_columns(table), table
    mailbox = normalise_mailbox(cases[1][2])
    assert mailbox["is_active"] is True
    assert mailbox["created_at"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert normalise_suppression(cases[4][2])["id"] == "x@y"


def test_webhook_signing_secret_never_reaches_raw() -> None:
    row = normalise_webhook(
        {"id": "wh_1", "url": "https://h", "events": [], "signing_secret": "whsec_SECRET"}
    )
    assert "whsec_SECRET" not in row["raw"]


def test_audit_entry_requires_created_at_and_keeps_metadata() -> None:
    row = normalise_audit_entry(
        {
            "id": "al_1",
            "action": "oversight.approved",
            "resource_type": "email",
            "resource_id": "em_1",
            "actor_key_id": "key_2",
            "metadata": {"reviewer": "lee"},
            "created_at": "2026-07-01T00:00:00Z",
        }
    )
    assert json.loads(row["metadata"]) == {"reviewer": "lee"}
    assert set(row) | {"chain_seq", "chain_hash", "run_id", "harvested_at"} == table_columns(
        "multimail_audit_log"
    )
    with pytest.raises(RecordError, match="created_at"):
        normalise_audit_entry({"id": "al_2", "action": "x"})
