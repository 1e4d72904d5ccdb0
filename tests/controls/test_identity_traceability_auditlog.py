"""ID-001, TR-001, TR-002, AL-001, AL-002 on hand-built stores."""

from __future__ import annotations

from auditkit.config import Settings
from auditkit.store import Store
from tests.builders import StoreBuilder, ts
from tests.controls.conftest import check, targets


# --- ID-001 ------------------------------------------------------------------------------
def test_id_001_per_message_flag_wins_then_domain_flag(store: Store, build: StoreBuilder) -> None:
    build.account()
    build.domain()
    build.domain(id="dom_2", domain="nodkim.example", dkim_verified=False)
    build.email("msg_pass", dkim_verified=True, from_address="a@nodkim.example")
    build.email("msg_fail", dkim_verified=False)
    build.email("domain_pass")
    build.email("domain_fail", from_address="a@nodkim.example")
    build.email("default_domain", from_address="a@northwind.multimail.dev")
    build.email("unknown", from_address="a@nowhere.example")
    build.email(
        "undelivered",
        from_address="a@nowhere.example",
        delivered_at=None,
        status="pending_send_approval",
    )
    result = check(store, "ID-001")
    assert result.status == "fail"
    assert targets(result) == {"msg_fail", "domain_fail", "unknown"}
    sources = {
        f.target_id: (f.evidence["dkim_status"], f.evidence["dkim_source"]) for f in result.findings
    }
    assert sources["msg_fail"] == ("fail", "message dkim_verified")
    assert sources["domain_fail"] == ("fail", "domain dkim_verified (nodkim.example)")
    assert sources["unknown"][0] == "unknown"
    assert result.checked == 6


def test_id_001_pass_and_not_applicable(store: Store, build: StoreBuilder) -> None:
    build.email("draft", delivered_at=None, status="pending_send_approval")
    assert check(store, "ID-001").status == "not_applicable"
    build.domain()
    build.email("signed")
    assert check(store, "ID-001").status == "pass"


# --- TR-001 ------------------------------------------------------------------------------
LINKED = Settings(mailboxes={"support@northwind.example": {"require_conversation_link": True}})


def test_tr_001_agent_mail_needs_a_link_where_required(store: Store, build: StoreBuilder) -> None:
    build.mailbox()
    build.mailbox(id="mbx_free", address="free@northwind.example")
    build.email("linked", agent="fin", conversation_id="conv_1")
    build.email("unlinked", agent="fin")
    build.email("agent_from_audit")
    build.audit(
        "sent", "email.sent", "agent_from_audit", actor_key_id="k", metadata={"agent": "fin"}
    )
    build.email("human")  # no agent anywhere → not an agent message
    build.email(
        "other_mailbox", agent="fin", mailbox_id="mbx_free", from_address="free@northwind.example"
    )
    result = check(store, "TR-001", settings=LINKED)
    assert result.status == "fail"
    assert targets(result) == {"unlinked", "agent_from_audit"}
    assert result.checked == 3


def test_tr_001_pass_and_not_applicable(store: Store, build: StoreBuilder) -> None:
    build.mailbox()
    build.email("linked", agent="fin", conversation_id="conv_1")
    assert check(store, "TR-001").status == "not_applicable"  # no policy requires links
    assert check(store, "TR-001", settings=LINKED).status == "pass"


# --- TR-002 ------------------------------------------------------------------------------
def test_tr_002_missing_conversations(store: Store, build: StoreBuilder) -> None:
    build.conversation("conv_ok")
    build.conversation("conv_gone", found=False)
    build.email("ok", conversation_id="conv_ok")
    build.email("gone", conversation_id="conv_gone")
    build.email("never_looked_up", conversation_id="conv_other")
    result = check(store, "TR-002")
    assert result.status == "fail"
    assert targets(result, "open") == {"gone"}
    assert targets(result, "review") == {"never_looked_up"}
    assert result.findings[0].evidence["http_status"] == 404


def test_tr_002_not_applicable_without_intercom_and_pass(store: Store, build: StoreBuilder) -> None:
    build.email("ok", conversation_id="conv_ok")
    result = check(store, "TR-002")
    assert result.status == "not_applicable"
    assert result.detail == "links unverified: Intercom was not harvested"
    build.conversation("conv_ok")
    assert check(store, "TR-002").status == "pass"


# --- AL-001 ------------------------------------------------------------------------------
def test_al_001_integrity_events_in_period(store: Store, build: StoreBuilder) -> None:
    build.email("e1")
    build.audit("a_in", "email.sent", "e1")
    build.audit("a_old", "email.sent", "e0", created_at=ts("2026-04-01 00:00"))
    build.integrity("audit_entry", "a_in", "changed")
    build.integrity("audit_entry", "a_old", "removed")
    build.integrity("email", "e1", "removed")
    result = check(store, "AL-001")
    assert result.status == "fail"
    assert {(f.target_type, f.target_id) for f in result.findings} == {
        ("audit_entry", "a_in"),
        ("email", "e1"),
    }
    assert any("removed at the source" in f.reason for f in result.findings)


def test_al_001_pass_and_not_applicable(store: Store, build: StoreBuilder) -> None:
    assert check(store, "AL-001").status == "not_applicable"
    build.audit("a1", "email.sent", "e1")
    assert check(store, "AL-001").status == "pass"


# --- AL-002 ------------------------------------------------------------------------------
def test_al_002_approval_records_must_agree(store: Store, build: StoreBuilder) -> None:
    build.email("both", approved_at=ts("2026-08-03 10:02"), approved_by="alice")
    build.audit("ap1", "oversight.approved", "both")
    build.email("no_entry", approved_at=ts("2026-08-03 10:02"), approved_by="alice")
    build.email("entry_only")
    build.audit("ap2", "oversight.approved", "entry_only")
    build.email("guide_decision", decision="approved", source_shape="guide")
    build.audit("ap3", "oversight.approved", "guide_decision")
    result = check(store, "AL-002")
    assert result.status == "fail"
    assert targets(result) == {"no_entry", "entry_only"}


def test_al_002_pass_and_not_applicable(store: Store, build: StoreBuilder) -> None:
    build.email("approved", approved_at=ts("2026-08-03 10:02"), approved_by="alice")
    result = check(store, "AL-002")
    assert result.status == "not_applicable" and "audit log not harvested" in result.detail
    build.audit("ap1", "oversight.approved", "approved")
    assert check(store, "AL-002").status == "pass"


def test_custom_audit_action_names(store: Store, build: StoreBuilder) -> None:
    # The entry is a minute off the approval time, so nothing ties "email.approved" to
    # approvals: AL-002 cannot say whether the log agrees, and says so instead of accusing.
    build.email("e1", approved_at=ts("2026-08-03 10:02"), approved_by="alice")
    build.audit("ap1", "email.approved", "e1")
    unknown = check(store, "AL-002")
    assert unknown.status == "inconclusive" and not unknown.findings
    assert "[controls.audit_actions] approved" in unknown.detail
    settings = Settings(controls={"audit_actions": {"approved": "email.approved"}})
    assert check(store, "AL-002", settings=settings).status == "pass"


def test_approval_action_inferred_from_its_timing(store: Store, build: StoreBuilder) -> None:
    build.email("e1", approved_at=ts("2026-08-03 10:01"), approved_by="alice")
    build.email("e2", approved_at=ts("2026-08-03 11:00"), approved_by="alice")
    build.audit("ap1", "decision.recorded", "e1")
    assert check(store, "AL-002").status == "fail"  # e2's approval has no entry
    build.audit("ap2", "decision.recorded", "e2", created_at=ts("2026-08-03 11:00"))
    assert check(store, "AL-002").status == "pass"
