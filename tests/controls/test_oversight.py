"""OVS-001..OVS-007 on hand-built stores: pass, fail and not_applicable for each."""

from __future__ import annotations

import pytest

from auditkit.config import Settings
from auditkit.controls.runner import run_controls
from auditkit.findings import parse_period
from auditkit.store import Store
from tests.builders import StoreBuilder, ts
from tests.controls.conftest import check, targets


# --- OVS-001: mode reconstructed from the audit log --------------------------------------
def test_ovs_001_not_applicable_without_delivered_mail(store: Store, build: StoreBuilder) -> None:
    build.mailbox()
    build.email("e1", delivered_at=None, status="pending_send_approval")
    result = check(store, "OVS-001")
    assert result.status == "not_applicable"
    assert "delivered" in result.detail


def test_ovs_001_uses_mode_in_force_at_creation_not_todays_mode(
    store: Store, build: StoreBuilder
) -> None:
    # Today the mailbox is autonomous; until 10 Aug it was gated_send.
    build.mailbox(oversight_mode="autonomous")
    build.audit(
        "chg",
        "mailbox.oversight_mode_changed",
        "mbx_1",
        created_at=ts("2026-08-10 00:00"),
        metadata={"from": "gated_send", "to": "autonomous", "changed_by": "ops@northwind.example"},
    )
    build.email("before", created_at=ts("2026-08-03 10:00"))  # gated, no approval → fail
    build.email(
        "after", created_at=ts("2026-08-12 10:00"), delivered_at=ts("2026-08-12 10:01")
    )  # autonomous
    build.email(
        "approved",
        created_at=ts("2026-08-04 10:00"),
        approved_at=ts("2026-08-04 10:02"),
        approved_by="alice@northwind.example",
    )
    result = check(store, "OVS-001")
    assert result.status == "fail"
    assert targets(result) == {"before"}
    (finding,) = result.findings
    assert finding.evidence["mode_at_send"] == "gated_send"
    assert finding.evidence["mode_source"] == "from-mode of the first logged change"
    assert result.checked == 3


@pytest.mark.parametrize(
    ("current", "expected"),
    [("gated_all", {"e1"}), ("gated_send", {"e1"}), ("monitored", set()), ("autonomous", set())],
)
def test_ovs_001_no_changes_uses_current_mode(
    store: Store, build: StoreBuilder, current: str, expected: set[str]
) -> None:
    build.mailbox(oversight_mode=current)
    build.email("e1")
    result = check(store, "OVS-001")
    assert targets(result) == expected
    assert result.status == ("fail" if expected else "pass")


def test_ovs_001_change_into_gated_mode(store: Store, build: StoreBuilder) -> None:
    build.mailbox(oversight_mode="gated_all")
    build.audit(
        "chg",
        "mailbox.oversight_mode_changed",
        "mbx_1",
        created_at=ts("2026-08-10 00:00"),
        metadata={"from": "monitored", "to": "gated_all"},
    )
    build.email("early", created_at=ts("2026-08-03 10:00"))
    build.email("late", created_at=ts("2026-08-11 10:00"), delivered_at=ts("2026-08-11 10:01"))
    result = check(store, "OVS-001")
    assert targets(result) == {"late"}
    assert result.findings[0].evidence["mode_source"] == "audit entry chg"


# --- OVS-002 -----------------------------------------------------------------------------
def test_ovs_002(store: Store, build: StoreBuilder) -> None:
    build.email("ok", approved_at=ts("2026-08-03 10:02"), approved_by="alice")
    build.email("late", approved_at=ts("2026-08-03 11:00"), approved_by="alice")
    result = check(store, "OVS-002")
    assert result.status == "fail"
    assert targets(result) == {"late"}
    assert result.findings[0].evidence["lag_seconds"] == pytest.approx(3300)


def test_ovs_002_pass_and_not_applicable(store: Store, build: StoreBuilder) -> None:
    build.email("plain")
    assert check(store, "OVS-002").status == "not_applicable"
    build.email("ok", approved_at=ts("2026-08-03 10:02"), approved_by="alice")
    assert check(store, "OVS-002").status == "pass"


# --- OVS-003 -----------------------------------------------------------------------------
def test_ovs_003_rejected_by_any_signal_but_delivered(store: Store, build: StoreBuilder) -> None:
    build.email("by_status", status="rejected")
    build.email("by_decision", decision="rejected", source_shape="guide")
    build.email("by_audit")
    build.audit(
        "rej", "oversight.rejected", "by_audit", metadata={"reviewer": "alice", "reason": "tone"}
    )
    build.email("cancel_audit")
    build.audit("can", "email.cancelled", "cancel_audit")
    build.email("stopped_ok", status="rejected", delivered_at=None)
    result = check(store, "OVS-003")
    assert result.status == "fail"
    assert targets(result) == {"by_status", "by_decision", "by_audit", "cancel_audit"}
    assert result.checked == 5


def test_ovs_003_pass_and_not_applicable(store: Store, build: StoreBuilder) -> None:
    build.email("normal")
    assert check(store, "OVS-003").status == "not_applicable"
    build.email("stopped", status="cancelled", delivered_at=None)
    assert check(store, "OVS-003").status == "pass"


# --- OVS-004 -----------------------------------------------------------------------------
def _approved(
    build: StoreBuilder,
    id: str,
    approver: str,
    sender_key: str = "key_send",
    agent: str | None = "fin",
) -> None:
    build.email(id, approved_at=ts("2026-08-03 10:02"), approved_by=approver, agent=agent)
    build.audit(f"sent_{id}", "email.sent", id, actor_key_id=sender_key, metadata={"agent": agent})


def test_ovs_004_self_approval_by_key_agent_or_operator(store: Store, build: StoreBuilder) -> None:
    build.account()
    _approved(build, "by_reviewer", "alice@northwind.example")
    _approved(build, "by_own_key", "key_send")
    _approved(build, "by_agent", "FIN")
    _approved(build, "by_operator", "ops@northwind.example", sender_key=None, agent=None)
    result = check(store, "OVS-004")
    assert result.status == "fail"
    assert targets(result) == {"by_own_key", "by_agent", "by_operator"}
    assert all(f.evidence["self_approved"] for f in result.findings)


def test_ovs_004_same_key_approving_in_audit_log(store: Store, build: StoreBuilder) -> None:
    _approved(build, "e1", "alice@northwind.example")
    build.audit(
        "appr",
        "oversight.approved",
        "e1",
        actor_key_id="key_send",
        metadata={"reviewer": "alice@northwind.example"},
    )
    assert targets(check(store, "OVS-004")) == {"e1"}


def test_ovs_004_reviewer_list(store: Store, build: StoreBuilder) -> None:
    _approved(build, "listed", "Alice@northwind.example")
    _approved(build, "unlisted", "mallory@northwind.example")
    settings = Settings(controls={"reviewers": ["alice@northwind.example"]})
    result = check(store, "OVS-004", settings=settings)
    assert targets(result) == {"unlisted"}
    assert "not in [controls] reviewers" in result.findings[0].reason
    # Without a configured list, any non-author approver passes.
    assert check(store, "OVS-004").status == "pass"


def test_ovs_004_approver_kinds_and_keys_that_can_send(store: Store, build: StoreBuilder) -> None:
    build.api_key("key_send", ["read", "send"])
    build.api_key("key_other_agent", ["read", "send"])
    build.api_key("key_console", ["read", "oversight"])
    _approved(build, "by_console", "key_console")
    _approved(build, "by_other_agent", "key_other_agent")
    _approved(build, "by_session", "hps_4f1c09ab")
    build.audit(
        "ap_session",
        "oversight.approved",
        "by_session",
        actor_key_id=None,
        metadata={"session_id": "hps_4f1c09ab"},
    )
    _approved(build, "by_person", "alice@northwind.example")
    result = check(store, "OVS-004")
    # No reviewers list: still, an agent's key may not approve mail, its own or another's.
    assert targets(result) == {"by_other_agent"}
    (finding,) = result.findings
    assert finding.evidence["approver_kind"] == "key"
    assert "holds the send scope" in finding.reason
    # A reviewers list of people is not applied to keys and sessions; they are counted.
    settings = Settings(controls={"reviewers": ["alice@northwind.example"]})
    listed = check(store, "OVS-004", settings=settings)
    assert targets(listed) == {"by_other_agent"}
    assert "2 approval(s) by an API key or approval-page session" in listed.detail
    # Naming the console key makes the list cover keys too.
    settings = Settings(controls={"reviewers": ["alice@northwind.example", "key_console"]})
    assert targets(check(store, "OVS-004", settings=settings)) == {"by_other_agent", "by_session"}


def test_ovs_004_not_applicable(store: Store, build: StoreBuilder) -> None:
    build.email("unapproved")
    assert check(store, "OVS-004").status == "not_applicable"


# --- OVS-005 -----------------------------------------------------------------------------
def test_ovs_005_send_and_oversight_on_one_key(store: Store, build: StoreBuilder) -> None:
    build.api_key("k_send", ["send", "read"])
    build.api_key("k_review", ["oversight"])
    build.api_key("k_both", ["send", "oversight"])
    build.api_key("k_future", ["send", "oversight"], created_at=ts("2026-10-15 00:00"))
    result = check(store, "OVS-005")
    assert result.status == "fail"
    assert targets(result) == {"k_both"}
    assert result.checked == 3


def test_ovs_005_scopes_held_during_period_per_audit_history(
    store: Store, build: StoreBuilder
) -> None:
    # Today k1 only has send, but it held oversight too from July to mid-August.
    build.api_key("k1", ["send"])
    build.audit(
        "c1",
        "api_key.created",
        "k1",
        created_at=ts("2026-01-01 00:00"),
        metadata={"scopes": ["send"]},
    )
    build.audit(
        "u1",
        "api_key.updated",
        "k1",
        created_at=ts("2026-07-05 00:00"),
        metadata={"scopes": ["send", "oversight"]},
    )
    build.audit(
        "u2",
        "api_key.updated",
        "k1",
        created_at=ts("2026-08-15 00:00"),
        metadata={"scopes": ["send"]},
    )
    # k2 held both only before Q3.
    build.api_key("k2", ["send"])
    build.audit(
        "c2",
        "api_key.created",
        "k2",
        created_at=ts("2026-01-01 00:00"),
        metadata={"scopes": ["send", "oversight"]},
    )
    build.audit(
        "u3",
        "api_key.updated",
        "k2",
        created_at=ts("2026-03-01 00:00"),
        metadata={"scopes": ["send"]},
    )
    result = check(store, "OVS-005")
    assert targets(result) == {"k1"}
    assert result.findings[0].evidence["scopes_source"].startswith("audit entry u1")


def test_ovs_005_revoked_keys(store: Store, build: StoreBuilder) -> None:
    build.api_key("revoked_before", ["send", "oversight"], is_active=False)
    build.audit("r1", "api_key.revoked", "revoked_before", created_at=ts("2026-06-01 00:00"))
    build.api_key("revoked_inside", ["send", "oversight"], is_active=False)
    build.audit("r2", "api_key.revoked", "revoked_inside", created_at=ts("2026-08-01 00:00"))
    build.api_key("revoked_unknown", ["send", "oversight"], is_active=False)
    result = check(store, "OVS-005")
    assert targets(result, "open") == {"revoked_inside"}
    assert targets(result, "review") == {"revoked_unknown"}


def test_ovs_005_not_applicable(store: Store, build: StoreBuilder) -> None:
    assert check(store, "OVS-005").status == "not_applicable"
    build.api_key("k_send", ["send"])
    assert check(store, "OVS-005").status == "pass"


# --- OVS-006 -----------------------------------------------------------------------------
def test_ovs_006_pending_at_period_end(store: Store, build: StoreBuilder) -> None:
    build.email(
        "stale",
        status="pending_send_approval",
        delivered_at=None,
        created_at=ts("2026-09-20 00:00"),
    )
    build.email(
        "fresh",
        status="pending_send_approval",
        delivered_at=None,
        created_at=ts("2026-09-29 12:00"),
    )
    # Approved only after the quarter ended: it was pending at period end.
    build.email(
        "decided_late",
        created_at=ts("2026-09-10 00:00"),
        approved_at=ts("2026-10-02 00:00"),
        approved_by="alice",
        delivered_at=ts("2026-10-02 00:01"),
    )
    build.email(
        "decided_in_time",
        created_at=ts("2026-09-10 00:00"),
        approved_at=ts("2026-09-10 05:00"),
        approved_by="alice",
        delivered_at=ts("2026-09-10 05:01"),
    )
    result = check(store, "OVS-006")
    assert result.status == "fail"
    assert targets(result) == {"stale", "decided_late"}
    assert result.checked == 4
    # A tighter limit from config catches the fresh one too (60 h before period end).
    tight = check(store, "OVS-006", settings=Settings(controls={"pending_limit_hours": 24}))
    assert targets(tight) == {"stale", "decided_late", "fresh"}


def test_ovs_006_pass_and_not_applicable(store: Store, build: StoreBuilder) -> None:
    build.email("autonomous")
    assert check(store, "OVS-006").status == "not_applicable"
    build.email("quick", approved_at=ts("2026-08-03 10:02"), approved_by="alice")
    assert check(store, "OVS-006").status == "pass"


def test_ovs_006_measures_to_the_harvest_not_the_wall_clock(
    store: Store, build: StoreBuilder
) -> None:
    # A quarter not over when the store was last harvested (two days after the message was
    # created): 48 hours pending at the data's time, under the 72-hour limit. Measured to
    # the wall clock it would be weeks, and mail approved since would be reported pending.
    q4 = parse_period("2026Q4")
    build.email(
        "waiting",
        status="pending_send_approval",
        delivered_at=None,
        created_at=ts("2026-10-05 09:00"),
    )
    store.con.execute(
        f"INSERT INTO {store.base('harvest_runs')} (account, run_id, command, started_at, "
        "finished_at, outcome) VALUES ('default', 'r1', 'harvest', ?, ?, 'ok')",
        [ts("2026-10-07 08:00"), ts("2026-10-07 09:00")],
    )
    (result,) = run_controls(store, Settings(), q4, only=["OVS-006"])
    assert result.status == "pass"
    # A later harvest that still sees it pending finds it.
    store.con.execute(
        f"UPDATE {store.base('harvest_runs')} SET finished_at = ?", [ts("2026-10-09 09:00")]
    )
    (result,) = run_controls(store, Settings(), q4, only=["OVS-006"])
    assert targets(result) == {"waiting"}
    assert result.findings[0].evidence["evaluated_at"] == "2026-10-09T09:00:00Z"


# --- OVS-007 -----------------------------------------------------------------------------
def test_ovs_007_reports_each_change_in_period(store: Store, build: StoreBuilder) -> None:
    build.mailbox()
    build.audit(
        "in",
        "mailbox.oversight_mode_changed",
        "mbx_1",
        created_at=ts("2026-08-10 00:00"),
        metadata={"from": "gated_send", "to": "autonomous", "changed_by": "ops@northwind.example"},
    )
    build.audit(
        "out",
        "mailbox.oversight_mode_changed",
        "mbx_1",
        created_at=ts("2026-05-10 00:00"),
        metadata={"from": "gated_all", "to": "gated_send"},
    )
    result = check(store, "OVS-007")
    assert result.status == "fail" and result.severity == "low"
    (finding,) = result.findings
    assert finding.target_type == "audit_entry" and finding.target_id == "in"
    assert (
        "support@northwind.example changed from gated_send to autonomous by ops@northwind.example"
        in finding.reason
    )
    assert finding.evidence["mailbox_id"] == "mbx_1"


def test_ovs_007_pass_and_not_applicable(store: Store, build: StoreBuilder) -> None:
    assert check(store, "OVS-007").status == "not_applicable"
    build.mailbox()
    assert check(store, "OVS-007").status == "pass"


def test_ovs_001_mailbox_found_by_from_address_when_id_missing(
    store: Store, build: StoreBuilder
) -> None:
    build.mailbox(oversight_mode="gated_all")
    build.email(
        "imported",
        mailbox_id=None,
        from_address="Support <Support@northwind.example>",
        source_shape="guide",
    )
    result = check(store, "OVS-001")
    assert targets(result) == {"imported"}
    assert result.findings[0].evidence["mailbox_id"] == "mbx_1"
