"""The audit-log vocabulary: configured meanings win, the rest are inferred from the records
(with support counts), and what cannot be established makes controls inconclusive."""

from __future__ import annotations

import json

import pytest

from auditkit.audit_actions import observed_actions
from auditkit.config import Settings
from auditkit.controls.settings import ControlSettings
from auditkit.errors import ConfigError
from auditkit.store import Store
from auditkit.vocabulary import SYMBOLIC, Matcher, parse_configured
from auditkit.vocabulary_inference import resolve_vocabulary
from tests.builders import StoreBuilder, ts
from tests.controls.conftest import check


def _vocabulary(store: Store, **audit_actions: object):
    settings = Settings(controls={"audit_actions": audit_actions}) if audit_actions else Settings()
    return resolve_vocabulary(store.con, ControlSettings.from_settings(settings).audit_actions)


def _decided_quarter(build: StoreBuilder, *, decide: str = "split") -> None:
    """Three approved, two rejected and one cancelled email, each with a send entry at its
    creation and its decision entry. `decide="one"` logs both decisions as one action whose
    metadata says which."""

    def decision(entry_id: str, email_id: str, at: str, verdict: str, split_action: str) -> None:
        if decide == "one":
            build.audit(
                entry_id,
                "review.decide",
                email_id,
                created_at=ts(at),
                metadata={"email_id": email_id, "action": verdict},
            )
        else:
            build.audit(entry_id, split_action, email_id, created_at=ts(at))

    for i in range(3):
        created = ts(f"2026-08-0{i + 1} 10:00")
        build.email(
            f"ok{i}",
            created_at=created,
            approved_at=ts(f"2026-08-0{i + 1} 10:30"),
            approved_by="rev@northwind.example",
        )
        build.audit(f"s-ok{i}", "message.queued", f"ok{i}", created_at=created)
        decision(f"d-ok{i}", f"ok{i}", f"2026-08-0{i + 1} 10:30", "approve", "review.passed")
    for i in range(2):
        created = ts(f"2026-08-1{i} 10:00")
        build.email(f"no{i}", created_at=created, status="rejected", delivered_at=None)
        build.audit(f"s-no{i}", "message.queued", f"no{i}", created_at=created)
        decision(f"d-no{i}", f"no{i}", f"2026-08-1{i} 11:00", "reject", "review.failed")
    build.email("cx", created_at=ts("2026-08-20 10:00"), status="cancelled", delivered_at=None)
    build.audit("s-cx", "message.queued", "cx", created_at=ts("2026-08-20 10:00"))
    build.audit("d-cx", "message.withdrawn", "cx", created_at=ts("2026-08-20 10:05"))


def test_split_actions_are_inferred_with_their_support(store: Store, build: StoreBuilder) -> None:
    _decided_quarter(build)
    v = _vocabulary(store)
    assert v["email_sent"].matchers == (Matcher("message.queued"),)
    assert (v["email_sent"].support, v["email_sent"].eligible) == (6, 6)
    assert v["approved"].matchers == (Matcher("review.passed"),)
    assert v["approved"].provenance().startswith("inferred from 3 of 3 approved emails")
    assert v["rejected"].matchers == (Matcher("review.failed"),)
    assert v["cancelled"].matchers == (Matcher("message.withdrawn"),)
    assert v["approved"].confidence == "high" and v["rejected"].confidence == "medium"


def test_one_decide_action_is_split_by_its_metadata(store: Store, build: StoreBuilder) -> None:
    _decided_quarter(build, decide="one")
    v = _vocabulary(store)
    assert v["approved"].matchers == (Matcher("review.decide", ("action",), "approve"),)
    assert v["rejected"].matchers == (Matcher("review.decide", ("action",), "reject"),)
    assert v["approved"].describe() == "review.decide where metadata.action = 'approve'"
    # The controls read it: every approval has its entry, and a rejection is no approval.
    assert check(store, "AL-002").status == "pass"


def test_generic_mailbox_update_is_narrowed_to_the_mode_field(
    store: Store, build: StoreBuilder
) -> None:
    build.mailbox(oversight_mode="monitored")
    build.audit(
        "u1",
        "mailbox.updated",
        "mbx_1",
        created_at=ts("2026-06-01 09:00"),
        metadata={"changes": {"display_name": ["Support", "Help"]}},
    )
    build.audit(
        "u2",
        "mailbox.updated",
        "mbx_1",
        created_at=ts("2026-08-15 09:00"),
        metadata={"changes": {"oversight_mode": ["gated_send", "monitored"]}},
    )
    v = _vocabulary(store)
    assert v["mode_changed"].matchers == (
        Matcher("mailbox.updated", ("changes", "oversight_mode")),
    )
    # Delivered without approval before the change: gated then, whatever the mailbox says now.
    build.email("early", created_at=ts("2026-08-01 10:00"))
    build.email("late", created_at=ts("2026-08-20 10:00"), delivered_at=ts("2026-08-20 10:05"))
    result = check(store, "OVS-001")
    assert [f.target_id for f in result.findings] == ["early"]
    assert result.findings[0].evidence["mode_at_send"] == "gated_send"
    modes = check(store, "OVS-007")
    assert [f.target_id for f in modes.findings] == ["u2"]
    assert "from gated_send to monitored" in modes.findings[0].reason


@pytest.mark.parametrize(
    "metadata",
    [
        {"from": "gated_send", "to": "monitored"},
        {"changes": {"oversight_mode": {"from": "gated_send", "to": "monitored"}}},
        {"old_mode": "gated_send", "new_mode": "monitored"},
    ],
)
def test_mode_change_shapes(store: Store, build: StoreBuilder, metadata: dict) -> None:
    build.mailbox(oversight_mode="monitored")
    build.audit(
        "c1", "settings.changed", "mbx_1", created_at=ts("2026-08-15 09:00"), metadata=metadata
    )
    build.email("early", created_at=ts("2026-08-01 10:00"))
    assert [f.target_id for f in check(store, "OVS-001").findings] == ["early"]


def test_unrecognisable_mailbox_entries_make_mode_controls_inconclusive(
    store: Store, build: StoreBuilder
) -> None:
    build.mailbox(oversight_mode="monitored")
    build.audit(
        "c1",
        "mailbox.patched",
        "mbx_1",
        created_at=ts("2026-08-15 09:00"),
        metadata={"field": "policy", "value": 3},
    )
    build.email("e", created_at=ts("2026-08-01 10:00"))
    for control_id in ("OVS-001", "OVS-007"):
        result = check(store, control_id)
        assert result.status == "inconclusive" and not result.findings
        assert "mode_changed" in result.detail


def test_no_mailbox_entries_means_no_change_on_record(store: Store, build: StoreBuilder) -> None:
    build.mailbox(oversight_mode="gated_send")
    build.email("e", created_at=ts("2026-08-01 10:00"))
    assert check(store, "OVS-001").status == "fail"
    assert check(store, "OVS-007").status == "pass"


def test_no_entries_about_emails_makes_email_controls_inconclusive(
    store: Store, build: StoreBuilder
) -> None:
    build.email("e", approved_at=ts("2026-08-03 10:02"), approved_by="rev@northwind.example")
    build.audit("k1", "api_key.created", "key_1")
    v = _vocabulary(store)
    assert not v.known("approved") and "no approved emails" in v["approved"].basis
    for control_id in ("AL-002", "OVS-004"):
        result = check(store, control_id)
        assert result.status == "inconclusive", control_id
        assert not result.findings
        assert "[controls.audit_actions]" in result.detail


def test_configured_meaning_wins_over_inference(store: Store, build: StoreBuilder) -> None:
    _decided_quarter(build)
    v = _vocabulary(store, approved={"action": "review.decide", "metadata": {"action": "approve"}})
    assert v["approved"].source == "configured"
    assert v["approved"].matchers == (Matcher("review.decide", ("action",), "approve"),)
    assert v["rejected"].source == "inferred"


def test_known_names_are_used_only_without_evidence(store: Store, build: StoreBuilder) -> None:
    build.email("e", approved_at=ts("2026-08-03 10:02"), approved_by="rev@northwind.example")
    build.audit("a", "oversight.approved", "e")  # a minute early: no timing evidence
    v = _vocabulary(store)
    assert v["approved"].source == "recognised_name"
    assert v["approved"].matchers == (Matcher("oversight.approved"),)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"approve": "x"}, "controls.audit_actions.approve is unknown"),
        ({"approved": ""}, "controls.audit_actions.approved must be a non-empty"),
        ({"approved": {"action": "x", "metadata": {"a": "b", "c": "d"}}}, "one path and value"),
        ({"approved": {"action": "x", "where": "y"}}, "unknown key 'where'"),
        ({"approved": {"metadata": {"a": "b"}}}, "approved.action must be"),
        ({"approved": []}, "at least one action"),
    ],
)
def test_bad_configuration_names_the_key(section: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_configured(section)


def test_configuration_forms() -> None:
    parsed = parse_configured(
        {
            "approved": [
                "email.approved",
                {"action": "oversight.decide", "metadata": {"action": "approve"}},
            ],
            "mode_changed": {"action": "mailbox.updated", "has": "changes.oversight_mode"},
        }
    )
    assert parsed["approved"] == (
        Matcher("email.approved"),
        Matcher("oversight.decide", ("action",), "approve"),
    )
    assert parsed["mode_changed"] == (Matcher("mailbox.updated", ("changes", "oversight_mode")),)


def test_matcher_sql_escapes_quotes(store: Store) -> None:
    matcher = Matcher("it's", ("we'ird", 'qu"ote'), "v'al")
    store.con.execute(
        f"INSERT INTO {store.base('multimail_audit_log')} (account, id, action, metadata, "
        "chain_seq, chain_hash, raw, raw_sha256, run_id, harvested_at) "
        "VALUES ('default', 'x', $a, $m, 1, 'h', '{}', 's', 'r', now())",
        {"a": "it's", "m": json.dumps({"we'ird": {'qu"ote': "V'AL"}})},
    )
    assert store.con.sql(
        f"SELECT count(*) FROM multimail_audit_log WHERE {matcher.sql()}"
    ).fetchall() == [(1,)]


def test_observed_actions_list_counts_keys_and_an_example(
    store: Store, build: StoreBuilder
) -> None:
    _decided_quarter(build, decide="one")
    listed = {a["action"]: a for a in observed_actions(store.con)}
    assert listed["review.decide"]["count"] == 5
    assert listed["review.decide"]["metadata_keys"] == ["action", "email_id"]
    assert listed["message.queued"]["example"]["id"] == "s-ok0"


def test_symbolic_sql_names_meanings() -> None:
    assert SYMBOLIC.predicate("approved", "a.") == "a.meaning('approved')"
