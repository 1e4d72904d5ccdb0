"""ID-001 with independent archive DKIM results, ID-002, ID-003, and the report agreeing with
the controls on DKIM status and oversight mode (one shared SQL for each)."""

from __future__ import annotations

from typing import Any

import pytest

from auditkit.config import Settings
from auditkit.controls import CATALOGUE_VERSION, catalogue
from auditkit.report.messages import MessageTable
from auditkit.report.scope import Scope
from auditkit.store import Store
from tests.builders import HARVESTED, StoreBuilder, ts
from tests.controls.conftest import Q3, check, targets


def archived(
    store: Store,
    sha: str,
    email_id: str | None,
    *signatures: dict[str, Any],
    body_matches_approved: bool | None = True,
    identity_header: str | None = "v=1; agent=support-bot",
    agent_header: str | None = None,
    agent_identity_header: str | None = None,
) -> None:
    """One archived copy and its DKIM signature results, as harvest-archive stores them."""
    store.upsert(
        "archive_messages",
        [
            {
                "sha256": sha,
                "source_path": f"eml/{sha}.eml",
                "email_id": email_id,
                "match_method": "header" if email_id else "none",
                "match_candidates": [email_id] if email_id else [],
                "from_address": "support@northwind.example",
                "to_addresses": ["customer@example.com"],
                "subject": "About your order",
                "identity_header": identity_header,
                "agent_header": agent_header,
                "agent_identity_header": agent_identity_header,
                "body_sha256": "b" * 64,
                "body_matches_approved": body_matches_approved,
                "body_diff_summary": None if body_matches_approved is not False else "changed",
                "size_bytes": 100,
                "raw_compressed": b"x",
                "run_id": "archive-1",
                "harvested_at": HARVESTED,
            }
        ],
        pk="sha256",
    )
    store.upsert(
        "archive_dkim_results",
        [
            {
                "sha256": sha,
                "signature_index": i,
                "domain": "northwind.example",
                "selector": "mm2026",
                "result": "pass",
                "reason": None,
                "aligned_with_from": True,
                "key_record_id": None,
                "verified_at": HARVESTED,
                "run_id": "archive-1",
                **sig,
            }
            for i, sig in enumerate(signatures)
        ],
        pk=["sha256", "signature_index"],
    )


PASS = {"result": "pass"}


# --- ID-001: precedence archive > message flag > domain flag ---------------------------------
def test_id_001_archive_result_wins_over_message_and_domain_flags(
    store: Store, build: StoreBuilder
) -> None:
    build.account()
    build.domain()  # northwind.example: dkim_verified true
    build.email("arch_pass_msg_fail", dkim_verified=False)
    archived(store, "s1", "arch_pass_msg_fail", PASS)
    build.email("arch_fail_msg_pass", dkim_verified=True)
    archived(store, "s2", "arch_fail_msg_pass", {"result": "fail", "reason": "body hash mismatch"})
    build.email("arch_unaligned_pass")
    archived(
        store,
        "s3",
        "arch_unaligned_pass",
        {"result": "pass", "aligned_with_from": False, "domain": "mailer.example"},
    )
    build.email("arch_temperror")
    archived(store, "s4", "arch_temperror", {"result": "temperror", "reason": "DNS timeout"})
    build.email("arch_permerror")
    archived(store, "s5", "arch_permerror", {"result": "permerror", "reason": "bad key"})
    build.email("arch_unsigned")
    archived(store, "s6", "arch_unsigned", {"result": "none", "domain": None, "selector": None})
    build.email("no_archive_domain_pass")
    build.email("no_archive_msg_fail", dkim_verified=False)

    result = check(store, "ID-001")
    assert result.status == "fail"
    assert result.checked == 8
    evidence = {f.target_id: f.evidence for f in result.findings}
    assert set(evidence) == {
        "arch_fail_msg_pass",
        "arch_unaligned_pass",
        "arch_temperror",
        "arch_permerror",
        "arch_unsigned",
        "no_archive_msg_fail",
    }
    statuses = {k: (v["dkim_status"], v["dkim_source_kind"]) for k, v in evidence.items()}
    assert statuses["arch_fail_msg_pass"] == ("fail", "archive")
    assert statuses["arch_unaligned_pass"] == ("fail", "archive")
    assert statuses["arch_temperror"] == ("unknown", "archive")
    assert statuses["arch_permerror"] == ("fail", "archive")
    assert statuses["arch_unsigned"] == ("fail", "archive")
    assert statuses["no_archive_msg_fail"] == ("fail", "message")
    # The evidence names the archived file and signature it relied on.
    assert "body hash mismatch" in evidence["arch_fail_msg_pass"]["dkim_source"]
    assert "eml/s2.eml" in evidence["arch_fail_msg_pass"]["dkim_source"]
    assert "not aligned" in evidence["arch_unaligned_pass"]["dkim_source"]
    assert evidence["no_archive_msg_fail"]["dkim_source"] == "message dkim_verified"
    assert result.detail == "DKIM source: archive 6, domain 1, message 1"


def test_id_001_any_failing_copy_beats_a_passing_one(store: Store, build: StoreBuilder) -> None:
    build.domain()
    build.email("two_copies")
    archived(store, "good", "two_copies", PASS)
    archived(store, "bad", "two_copies", {"result": "fail", "reason": "signature does not verify"})
    assert targets(check(store, "ID-001")) == {"two_copies"}


# --- ID-002 ------------------------------------------------------------------------------
def test_id_002_flags_changed_text_and_body_hash_failures(
    store: Store, build: StoreBuilder
) -> None:
    build.email("clean")
    archived(store, "a1", "clean", PASS)
    build.email("changed_before_signing")
    archived(store, "a2", "changed_before_signing", PASS, body_matches_approved=False)
    build.email("changed_after_signing")
    archived(
        store,
        "a3",
        "changed_after_signing",
        {"result": "fail", "reason": "body hash mismatch (bh= does not match)"},
    )
    build.email("wrong_key")  # a failing signature that is not about the body: ID-001 only
    archived(store, "a4", "wrong_key", {"result": "fail", "reason": "signature does not verify"})
    build.email("out_of_period", created_at=ts("2026-10-03 10:00"))
    archived(store, "a5", "out_of_period", PASS, body_matches_approved=False)
    archived(store, "a6", None, PASS, body_matches_approved=False)  # matched nothing

    result = check(store, "ID-002")
    assert result.status == "fail" and result.severity == "high"
    assert result.checked == 4
    by_id = {f.target_id: f for f in result.findings}
    assert set(by_id) == {"changed_before_signing", "changed_after_signing"}
    assert by_id["changed_before_signing"].evidence["body_differs_from_approved"] is True
    assert by_id["changed_before_signing"].evidence["body_hash_failed"] is False
    assert by_id["changed_after_signing"].evidence["body_hash_failed"] is True
    assert "changed after signing" in by_id["changed_after_signing"].reason


def test_id_002_pass_and_not_applicable(store: Store, build: StoreBuilder) -> None:
    build.email("clean")
    result = check(store, "ID-002")
    assert (result.status, result.detail) == ("not_applicable", "no sent-mail archive harvested")
    archived(store, "a1", "clean", PASS)
    assert check(store, "ID-002").status == "pass"


# --- ID-003 ------------------------------------------------------------------------------
def test_id_003_agent_mail_needs_an_identity_header(store: Store, build: StoreBuilder) -> None:
    build.email("tagged_agent_no_header", agent="support-bot")
    archived(store, "b1", "tagged_agent_no_header", PASS, identity_header=None)
    build.email("keyed_agent_no_header")
    build.audit("sent1", "email.sent", "keyed_agent_no_header", actor_key_id="key_agent")
    archived(store, "b2", "keyed_agent_no_header", PASS, identity_header=None)
    build.email("agent_header_only", agent="support-bot")
    archived(store, "b3", "agent_header_only", PASS, identity_header=None, agent_header="bot")
    build.email("agent_identity_only", agent="support-bot")
    archived(
        store, "b4", "agent_identity_only", PASS, identity_header=None, agent_identity_header="x"
    )
    build.email("human_no_header")  # no agent tag, no sending key: not an agent message
    archived(store, "b5", "human_no_header", PASS, identity_header=None)
    build.email(
        "undelivered_agent", agent="support-bot", delivered_at=None, status="pending_send_approval"
    )
    archived(store, "b6", "undelivered_agent", PASS, identity_header=None)

    result = check(store, "ID-003")
    assert result.status == "fail" and result.severity == "medium"
    assert result.checked == 4
    assert targets(result) == {"tagged_agent_no_header", "keyed_agent_no_header"}
    keyed = next(f for f in result.findings if f.target_id == "keyed_agent_no_header")
    assert keyed.evidence["sender_key"] == "key_agent"


def test_id_003_pass_and_not_applicable(store: Store, build: StoreBuilder) -> None:
    build.email("agent_mail", agent="support-bot")
    result = check(store, "ID-003")
    assert (result.status, result.detail) == ("not_applicable", "no sent-mail archive harvested")
    archived(store, "c1", "agent_mail", PASS)
    assert check(store, "ID-003").status == "pass"


# --- catalogue version ---------------------------------------------------------------------
def test_catalogue_version_is_exported_and_names_the_new_controls() -> None:
    year_month, serial = CATALOGUE_VERSION.split("-")
    assert len(year_month.split(".")) == 2 and serial.isdigit()
    assert {"ID-002", "ID-003"} <= {c.id for c in catalogue()}


# --- report and controls agree -------------------------------------------------------------
def report_rows(store: Store) -> dict[str, dict[str, Any]]:
    with MessageTable(store, Scope(Q3), Settings(), []) as table:
        rel = store.con.sql(
            f"SELECT message_id, delivered_at, dkim_status, dkim_source, oversight_mode_at_send, "
            f"oversight_mode_source FROM {table}"
        )
        names = rel.columns
        return {r[0]: dict(zip(names, r, strict=True)) for r in rel.fetchall()}


def test_report_dkim_columns_are_the_controls_result(store: Store, build: StoreBuilder) -> None:
    build.account()
    build.domain()
    build.domain(id="dom_2", domain="nodkim.example", dkim_verified=False)
    build.email("arch_pass_msg_fail", dkim_verified=False)
    archived(store, "s1", "arch_pass_msg_fail", PASS)
    build.email("arch_unaligned", dkim_verified=True)
    archived(store, "s2", "arch_unaligned", {"result": "pass", "aligned_with_from": False})
    build.email("arch_temperror")
    archived(store, "s3", "arch_temperror", {"result": "temperror"})
    build.email("default_domain", from_address="Bot <bot@northwind.multimail.dev>")
    build.email("domain_fail", from_address="a@nodkim.example")
    build.email("unknown", from_address="a@nowhere.example")

    rows = report_rows(store)
    findings = {f.target_id: f.evidence for f in check(store, "ID-001").findings}
    delivered = {k for k, r in rows.items() if r["delivered_at"] is not None}
    assert delivered == set(rows)
    for message_id, row in rows.items():
        if message_id in findings:
            assert (row["dkim_status"], row["dkim_source"]) == (
                findings[message_id]["dkim_status"],
                findings[message_id]["dkim_source_kind"],
            )
        else:
            assert row["dkim_status"] == "pass", message_id
    assert rows["arch_pass_msg_fail"]["dkim_source"] == "archive"
    assert rows["arch_unaligned"]["dkim_status"] == "fail"
    assert rows["arch_temperror"]["dkim_status"] == "unknown"
    assert (rows["default_domain"]["dkim_status"], rows["default_domain"]["dkim_source"]) == (
        "pass",
        "domain",
    )
    assert rows["unknown"]["dkim_source"] == "none"


@pytest.mark.parametrize(
    ("created", "mode", "source"),
    [
        ("2026-07-10 09:00", "autonomous", "audit_log"),  # before the first change: its `from`
        ("2026-08-01 12:00", "gated_send", "audit_log"),  # at a change time: the new mode
        ("2026-08-20 09:00", "monitored", "audit_log"),  # two changes at one time: chain order
    ],
)
def test_report_mode_at_send_matches_ovs_001(
    store: Store, build: StoreBuilder, created: str, mode: str, source: str
) -> None:
    build.mailbox(oversight_mode="monitored")
    change = "mailbox.oversight_mode_changed"
    build.audit(
        "m1",
        change,
        "mbx_1",
        created_at=ts("2026-08-01 12:00"),
        metadata={"from": "autonomous", "to": "gated_send"},
    )
    build.audit(
        "m2",
        change,
        "mbx_1",
        created_at=ts("2026-08-15 08:00"),
        metadata={"from": "gated_send", "to": "gated_all"},
    )
    build.audit(
        "m3",
        change,
        "mbx_1",
        created_at=ts("2026-08-15 08:00"),
        metadata={"from": "gated_all", "to": "monitored"},
    )
    build.email("e", created_at=ts(created), delivered_at=ts(created))
    row = report_rows(store)["e"]
    assert (row["oversight_mode_at_send"], row["oversight_mode_source"]) == (mode, source)
    # OVS-001 flags unapproved delivered mail exactly when that same mode is gated.
    assert (targets(check(store, "OVS-001")) == {"e"}) == (mode in ("gated_send", "gated_all"))


def test_mode_without_logged_change_is_the_current_mailbox_mode_in_both(
    store: Store, build: StoreBuilder
) -> None:
    build.mailbox(oversight_mode="gated_send")
    # An imported record without mailbox_id: both locate the mailbox by the From address.
    build.email("imported", mailbox_id=None)
    row = report_rows(store)["imported"]
    assert (row["oversight_mode_at_send"], row["oversight_mode_source"]) == (
        "gated_send",
        "current_mailbox",
    )
    ovs = check(store, "OVS-001")
    assert targets(ovs) == {"imported"}
    assert (
        ovs.findings[0].evidence["mode_source"] == "current mailbox setting (no mode change logged)"
    )


def test_mode_change_without_modes_falls_back_to_the_current_mode_in_both(
    store: Store, build: StoreBuilder
) -> None:
    build.mailbox(oversight_mode="gated_all")
    build.audit(
        "m1",
        "mailbox.oversight_mode_changed",
        "mbx_1",
        created_at=ts("2026-08-01 12:00"),
        metadata={"changed_by": "ops"},
    )
    build.email("e", created_at=ts("2026-08-03 10:00"))
    row = report_rows(store)["e"]
    assert (row["oversight_mode_at_send"], row["oversight_mode_source"]) == (
        "gated_all",
        "current_mailbox",
    )
    assert targets(check(store, "OVS-001")) == {"e"}
