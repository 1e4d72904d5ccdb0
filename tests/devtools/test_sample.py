"""The sample generator: determinism, the committed sample_data matching it, planted violations."""

from __future__ import annotations

import filecmp
import json
import tomllib
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from auditkit.business_days import business_days_between
from auditkit.devtools.sample import PHYSICAL_ADDRESS, REVIEWERS, UNSUBSCRIBE_URL, generate, main
from tests.conftest import SAMPLE_DATA

GENERATED = (
    "multimail",
    "intercom",
    "imports",
    "invalid",
    "README.md",
    "auditkit.toml",
    "expected_findings.json",
)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def generated_files(root: Path) -> list[Path]:
    files = []
    for name in GENERATED:
        top = root / name
        files += (
            [p.relative_to(root) for p in sorted(top.rglob("*")) if p.is_file()]
            if top.is_dir()
            else [Path(name)]
        )
    return files


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def quarter() -> dict[str, Any]:
    """The committed sample, parsed once."""
    mm = SAMPLE_DATA / "multimail"
    emails = read_jsonl(mm / "emails.jsonl")
    return {
        "emails": emails,
        "by_id": {e["id"]: e for e in emails},
        "audit": read_jsonl(mm / "audit_log.jsonl"),
        "conversations": {
            c["id"]: c
            for name in ("conversations.jsonl", "eu/conversations.jsonl")
            for c in read_jsonl(SAMPLE_DATA / "intercom" / name)
        },
        "mailboxes": {
            m["address"]: m for m in json.loads((mm / "mailboxes.json").read_text())["mailboxes"]
        },
        "keys": {k["name"]: k for k in json.loads((mm / "api_keys.json").read_text())["api_keys"]},
        "suppressions": json.loads((mm / "suppressions.json").read_text())["suppressions"],
        "expected": json.loads((SAMPLE_DATA / "expected_findings.json").read_text()),
    }


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    generate(tmp_path / "a", messages=200, seed=7)
    generate(tmp_path / "b", messages=200, seed=7)
    files = generated_files(tmp_path / "a")
    assert files == generated_files(tmp_path / "b")
    assert len(files) >= 15
    _, mismatch, errors = filecmp.cmpfiles(
        tmp_path / "a", tmp_path / "b", [str(f) for f in files], shallow=False
    )
    assert mismatch == [] and errors == []


def test_another_seed_gives_other_data(tmp_path: Path) -> None:
    generate(tmp_path / "a", messages=200, seed=7)
    generate(tmp_path / "b", messages=200, seed=8)
    name = "multimail/emails.jsonl"
    assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "b" / name).read_bytes()


def test_committed_sample_data_is_what_the_generator_writes(tmp_path: Path) -> None:
    main(["--out", str(tmp_path)])
    files = generated_files(tmp_path)
    assert files == generated_files(SAMPLE_DATA), "sample_data has extra or missing generated files"
    _, mismatch, errors = filecmp.cmpfiles(
        tmp_path, SAMPLE_DATA, [str(f) for f in files], shallow=False
    )
    assert (mismatch, errors) == ([], []), (
        "sample_data/ drifted from auditkit.sample: regenerate with "
        "`python -m auditkit.sample --out sample_data`"
    )


def test_sample_is_small_and_has_the_requested_volume(quarter: dict[str, Any]) -> None:
    size = sum(
        p.stat().st_size for p in SAMPLE_DATA.rglob("*") if p.is_file() and p.parts[-2] != "archive"
    )
    assert size < 10 * 1024 * 1024
    outbound = [e for e in quarter["emails"] if e["direction"] == "outbound"]
    inbound = [e for e in quarter["emails"] if e["direction"] == "inbound"]
    assert len(outbound) == 3000
    assert 50 < len(inbound) < 500
    # Inbound records carry list-summary fields only (reading inbound detail marks mail read).
    assert all("markdown" not in e and "approved_by" not in e for e in inbound)
    outbound_threads = {e["thread_id"] for e in outbound}
    assert all(e["thread_id"] in outbound_threads for e in inbound)


def test_records_are_ordered_and_ids_unique(quarter: dict[str, Any]) -> None:
    emails, audit = quarter["emails"], quarter["audit"]
    assert [e["received_at"] for e in emails] == sorted(e["received_at"] for e in emails)
    assert [a["created_at"] for a in audit] == sorted(a["created_at"] for a in audit)
    ids = [e["id"] for e in emails] + [a["id"] for a in audit]
    assert len(ids) == len(set(ids))
    assert all(len(i) == 26 for i in ids)
    # ULID-like: the first 10 characters encode the creation time, so ids sort by time.
    outbound_ids = [e["id"] for e in emails if e["direction"] == "outbound"]
    assert [i[:10] for i in outbound_ids] == sorted(i[:10] for i in outbound_ids)


def test_period_has_boundary_messages(quarter: dict[str, Any]) -> None:
    days = {ts(e["received_at"]).date() for e in quarter["emails"] if e["direction"] == "outbound"}
    assert min(days) < date(2026, 7, 1) and max(days) >= date(2026, 10, 1)


def test_expected_findings_targets_exist(quarter: dict[str, Any]) -> None:
    expected = quarter["expected"]
    assert expected == sorted(
        expected, key=lambda f: (f["control_id"], f["target_type"], f["target_id"])
    )
    assert all(f["state"] == "open" and f["note"] for f in expected)
    audit_ids = {a["id"] for a in quarter["audit"]}
    key_ids = {k["id"] for k in quarter["keys"].values()}
    sent_entries = {a["resource_id"] for a in quarter["audit"] if a["action"] == "email.sent"}
    days = {
        f"2026-{m:02d}-{d:02d}" for m, n in ((7, 31), (8, 31), (9, 30)) for d in range(1, n + 1)
    }
    for f in expected:
        if (f["control_id"], f["target_type"]) == ("PC-001", "email"):
            # The population gap: sent and logged, but in no listing.
            assert f["target_id"] not in quarter["by_id"] and f["target_id"] in sent_entries, f
            continue
        pool = {
            "email": quarter["by_id"],
            "audit_entry": audit_ids,
            "api_key": key_ids,
            "day": days,
        }[f["target_type"]]
        assert f["target_id"] in pool, f
    counts: dict[str, int] = {}
    for f in expected:
        counts[f["control_id"]] = counts.get(f["control_id"], 0) + 1
    assert counts == {
        "OVS-001": 2,
        "OVS-002": 1,
        "OVS-003": 1,
        "OVS-004": 2,
        "OVS-005": 1,
        "OVS-006": 1,
        "OVS-007": 1,
        "CS-001": 1,
        "CS-002": 1,
        "CS-003": 1,
        "CS-004": 1,
        "CS-005": 1,
        "ID-001": 1,
        "TR-001": 1,
        "TR-002": 1,
        "AL-001": 2,
        "AL-002": 2,
        "PC-001": 2,
    }


def planted(quarter: dict[str, Any], control_id: str) -> list[dict[str, Any]]:
    return [
        quarter["by_id"][f["target_id"]]
        for f in quarter["expected"]
        if f["control_id"] == control_id and f["target_type"] == "email"
    ]


def test_planted_violations_look_as_described(quarter: dict[str, Any]) -> None:
    entries: dict[str, list[dict[str, Any]]] = {}
    for a in quarter["audit"]:
        entries.setdefault(a["resource_id"], []).append(a)
    actions = {rid: {a["action"] for a in lst} for rid, lst in entries.items()}

    for e in planted(quarter, "OVS-001"):
        assert e["delivered_at"] and e["approved_at"] is None
        assert not actions[e["id"]] & {"oversight.approved", "oversight.rejected"}
    (e,) = planted(quarter, "OVS-002")
    assert ts(e["approved_at"]) > ts(e["delivered_at"])
    (e,) = planted(quarter, "OVS-003")
    assert (
        e["status"] == "rejected" and e["delivered_at"] and "oversight.rejected" in actions[e["id"]]
    )
    self_approved, intern = sorted(
        planted(quarter, "OVS-004"), key=lambda m: m["approved_by"].count("@")
    )
    legacy = quarter["keys"]["Legacy ops key"]
    assert self_approved["approved_by"] == legacy["id"]
    sent = next(a for a in entries[self_approved["id"]] if a["action"] == "email.sent")
    assert sent["actor_key_id"] == legacy["id"]
    assert intern["approved_by"] == "intern@northwind.example"
    assert {"send", "oversight"} <= set(legacy["scopes"])
    (e,) = planted(quarter, "OVS-006")
    assert e["status"] == "pending_send_approval" and e["received_at"].startswith("2026-09-20")
    (mode_change,) = [
        a for a in quarter["audit"] if a["action"] == "mailbox.oversight_mode_changed"
    ]
    assert {"control_id": "OVS-007", "target_id": mode_change["id"]}.items() <= next(
        f for f in quarter["expected"] if f["control_id"] == "OVS-007"
    ).items()
    assert (
        mode_change["metadata"]["from"] == "gated_send"
        and mode_change["metadata"]["to"] == "monitored"
    )

    (e,) = planted(quarter, "CS-001")
    assert PHYSICAL_ADDRESS not in e["markdown"] and UNSUBSCRIBE_URL in e["markdown"]
    (e,) = planted(quarter, "CS-002")
    assert PHYSICAL_ADDRESS in e["markdown"] and "unsubscribe" not in e["markdown"].lower()
    (e,) = planted(quarter, "CS-004")
    assert e["subject"] == "Re: your order #4411"
    assert [m for m in quarter["emails"] if m["thread_id"] == e["thread_id"]] == [e]
    (deals,) = planted(quarter, "CS-005")
    assert (
        planted(quarter, "ID-001") == [deals] and deals["from"] == "deals@northwind-deals.example"
    )
    (e,) = planted(quarter, "TR-001")
    assert "intercom_conversation_id" not in e["tags"]
    (e,) = planted(quarter, "TR-002")
    assert (
        e["tags"]["intercom_conversation_id"] == "999999999"
        and "999999999" not in quarter["conversations"]
    )
    no_entry, cancelled = sorted(
        planted(quarter, "AL-002"), key=lambda m: m["status"] == "cancelled"
    )
    assert no_entry["approved_by"] and "oversight.approved" not in actions[no_entry["id"]]
    assert cancelled["approved_by"] is None and "oversight.approved" in actions[cancelled["id"]]


def test_opt_out_cases_straddle_ten_business_days(quarter: dict[str, Any]) -> None:
    suppressed = {s["email_address"]: s for s in quarter["suppressions"]}
    (late,) = planted(quarter, "CS-003")
    since = ts(suppressed[late["to"][0]]["created_at"]).date()
    assert suppressed[late["to"][0]]["reason"] == "unsubscribe"
    assert business_days_between(since, ts(late["received_at"]).date()) > 10
    # Exactly one other message goes to a suppressed address: the within-allowance negative case.
    others = [
        e
        for e in quarter["emails"]
        if e["direction"] == "outbound"
        and e["to"][0] in suppressed
        and e["id"] != late["id"]
        and ts(e["received_at"]) > ts(suppressed[e["to"][0]]["created_at"])
    ]
    assert len(others) == 1
    since = ts(suppressed[others[0]["to"][0]]["created_at"]).date()
    assert business_days_between(since, ts(others[0]["received_at"]).date()) == 3


def test_everything_else_is_compliant(quarter: dict[str, Any]) -> None:
    """The exact-set test downstream is only meaningful if unplanted mail is clean."""
    excluded = {f["target_id"] for f in quarter["expected"]}
    reviewers = {email for _, email in REVIEWERS}
    boxes = {m["id"]: address for address, m in quarter["mailboxes"].items()}
    decisions: dict[str, dict[str, Any]] = {}
    for a in quarter["audit"]:
        if a["action"] in ("oversight.approved", "oversight.rejected"):
            decisions[a["resource_id"]] = a
    monitored_from = ts(
        next(
            a["created_at"]
            for a in quarter["audit"]
            if a["action"] == "mailbox.oversight_mode_changed"
        )
    )
    checked = 0
    for e in quarter["emails"]:
        if e["direction"] != "outbound" or e["id"] in excluded:
            continue
        box = boxes[e["mailbox_id"]]
        gated = box.startswith(("support@", "onboarding@")) or (
            box.startswith("outreach@") and ts(e["received_at"]) < monitored_from
        )
        if gated and e["delivered_at"]:
            assert e["approved_by"] in reviewers, e
            assert ts(e["approved_at"]) <= ts(e["delivered_at"]), e
            assert decisions[e["id"]]["metadata"]["reviewer"] == e["approved_by"], e
        if e["approved_by"]:
            assert decisions[e["id"]]["action"] == "oversight.approved", e
        if e["status"] == "pending_send_approval":
            assert ts(e["received_at"]) >= datetime(2026, 9, 28, tzinfo=UTC), e
        if box.startswith("support@"):
            assert e["tags"]["intercom_conversation_id"] in quarter["conversations"], e
        if box.startswith("outreach@"):
            assert PHYSICAL_ADDRESS in e["markdown"] and UNSUBSCRIBE_URL in e["markdown"], e
        assert not e["subject"].lower().startswith(("re:", "fwd:")), e
        checked += 1
    assert checked > 2900


def test_config_and_imports(quarter: dict[str, Any]) -> None:
    config = tomllib.loads((SAMPLE_DATA / "auditkit.toml").read_text(encoding="utf-8"))
    me = json.loads((SAMPLE_DATA / "intercom" / "me.json").read_text())
    assert config["intercom"]["app_id"] == me["app"]["id_code"]
    assert config["controls"]["reviewers"] == [email for _, email in REVIEWERS]
    assert config["controls"]["pending_limit_hours"] == 72
    assert set(config["mailboxes"]) == set(quarter["mailboxes"])
    assert config["mailboxes"]["support@northwind.example"]["require_conversation_link"] is True
    guide = read_jsonl(SAMPLE_DATA / "imports" / "read_email_guide.jsonl")
    good = [r for r in guide if "message_id" in r]
    assert len(good) == 6 and len(guide) == 7
    assert all(
        r["status"] == "delivered"
        and r["decision"]["reviewer"] in config["controls"]["reviewers"]
        and r["metadata"]["conversation_id"]
        for r in good
    )


def test_invalid_folder_holds_broken_inputs() -> None:
    folder = SAMPLE_DATA / "invalid"
    with pytest.raises(json.JSONDecodeError):
        json.loads((folder / "emails_page_truncated.json").read_text())
    assert not isinstance(
        json.loads((folder / "emails_page_not_a_list.json").read_text())["emails"], list
    )
    wrong = json.loads((folder / "email_wrong_types.json").read_text())
    assert isinstance(wrong["to"], int) and isinstance(wrong["received_at"], bool)


def test_generator_refuses_tiny_sets(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--messages", "10"])


def test_usage_and_deliveries_count_the_records_but_for_the_planted_gap(
    quarter: dict[str, Any],
) -> None:
    from auditkit.multimail_terms import UNSENT_STATUSES

    mm = SAMPLE_DATA / "multimail"
    usage = json.loads((mm / "usage_daily.json").read_text("utf-8"))["data"]
    deliveries = read_jsonl(mm / "webhook_deliveries.jsonl")
    gap = next(
        f["target_id"]
        for f in quarter["expected"]
        if (f["control_id"], f["target_type"]) == ("PC-001", "day")
    )
    left = [
        e
        for e in quarter["emails"]
        if e["direction"] == "outbound"
        and (e["delivered_at"] or e["bounced_at"] or e["status"] not in UNSENT_STATUSES)
    ]
    listed = Counter(e["received_at"][:10] for e in left)
    counted = Counter({d["date"]: d["count"] for d in usage if d["event_type"] == "emails_sent"})
    assert {d: counted[d] - listed[d] for d in counted | listed if counted[d] != listed[d]} == {
        gap: 1
    }
    first_day = min(d["created_at"] for d in deliveries)[:10]
    delivered = Counter(
        d["created_at"][:10] for d in deliveries if d["event_type"] == "message.sent"
    )
    whole_days = {d for d in listed if d > first_day}
    assert {d: delivered[d] - listed[d] for d in whole_days if delivered[d] != listed[d]} == {
        gap: 1
    }
