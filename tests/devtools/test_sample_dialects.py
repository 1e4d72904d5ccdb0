"""Sample dialects: every rendering of the sample quarter says the same facts in other words.

The checks here read the files with plain string and JSON logic (never auditkit's own
classifier or vocabulary inference), so a rendering cannot pass by agreeing with the code
under test.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from auditkit.cli import cli
from auditkit.devtools.dialects import DIALECTS, Dialect, main, render, rendered
from auditkit.devtools.sandbox import SandboxServer
from auditkit.errors import ConfigError
from tests.conftest import SAMPLE_DATA
from tests.devtools.sandbox_process import interrupt, kill_if_running, start_sandbox

NON_CANONICAL = [name for name in DIALECTS if name != "canonical"]
OVERSIGHT_KEY = "01KJQ5J5M010H6R0RHK6BJN139"  # "Reviewers' oversight console"
LEGACY_KEY = "01KH4728Q0HYPGDJRFPED1VSJ4"  # the self-approving Legacy ops key
SELF_APPROVED = "01M0E3CDY2NACRJM7EP7ASBFDZ"  # OVS-004: sent and approved by LEGACY_KEY
NO_APPROVAL_ENTRY = "01KX3C0F6P9S67DCERZ9GPABYK"  # AL-002: approved_by without an entry
MODE_CHANGE = "01M02C3EE08GEQZCY51JYCW589"  # OVS-007
SANDBOX_KEY = "mm_test_sandbox_key"
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

# How each vocabulary names a decision (written out here, not taken from the module).
DECISIONS: dict[str, dict[str, str]] = {
    "canonical": {"oversight.approved": "approve", "oversight.rejected": "reject"},
    "past_tense": {"email.approved": "approve", "email.rejected": "reject"},
    "mailbox_update": {"oversight.approve": "approve", "oversight.reject": "reject"},
}
OPT_OUT_MARKERS = (
    "[Unsubscribe](",
    "Unsubscribe here: https://",
    "Manage your email preferences: https://",
    'reply "unsubscribe"',
    "reply STOP",
)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def files_of(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def decision_of(entry: dict[str, Any], vocabulary: str) -> str | None:
    """approve / reject / None for an audit entry in the given vocabulary."""
    if vocabulary == "decide":
        if entry["action"] == "oversight.decide":
            return str(entry["metadata"]["action"])
        return None
    return DECISIONS.get(vocabulary, DECISIONS["canonical"]).get(entry["action"])


def has_opt_out(markdown: str) -> bool:
    return any(marker in markdown for marker in OPT_OUT_MARKERS)


def has_postal(markdown: str) -> bool:
    return "1200 Harbor" in markdown and ("CA 94607" in markdown or "California 94607" in markdown)


@pytest.fixture(scope="module")
def renders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Every dialect rendered once: name -> (folder, summary)."""
    root = tmp_path_factory.mktemp("dialects")
    return {name: (root / name, render(SAMPLE_DATA, root / name, name)) for name in DIALECTS}


@pytest.fixture(scope="module")
def source() -> dict[str, Any]:
    emails = read_jsonl(SAMPLE_DATA / "multimail" / "emails.jsonl")
    audit = read_jsonl(SAMPLE_DATA / "multimail" / "audit_log.jsonl")
    return {"emails": emails, "audit": audit}


# -- the dialect table ---------------------------------------------------------------------------
def test_the_dialect_table() -> None:
    assert {
        name: (d.vocabulary, d.approver, d.opt_out, d.postal, d.type_tags)
        for name, d in DIALECTS.items()
    } == {
        "canonical": ("canonical", "person", "markdown_link", "body", "category"),
        "decide-key": ("decide", "key", "labelled_url", "body", "none"),
        "past-tense-session": ("past_tense", "session", "reply_instruction", "signature", "type"),
        "mailbox-update": ("mailbox_update", "person", "labelled_url", "signature", "none"),
        "no-email-entries": ("no_email_entries", "key", "markdown_link", "body", "category"),
    }


def test_unknown_dialect_or_axis_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="known dialects: canonical, decide-key") as caught:
        render(SAMPLE_DATA, tmp_path / "out", "klingon")
    assert all(name in str(caught.value) for name in DIALECTS)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="approver must be one of"):
        Dialect("odd", approver="robot")


def test_dest_must_be_new_or_empty_and_outside_the_source(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not an empty folder"):
        render(SAMPLE_DATA, tmp_path / "full", "canonical")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    with pytest.raises(ConfigError, match="inside the source dataset"):
        render(SAMPLE_DATA, SAMPLE_DATA / "rendered", "canonical")
    assert not (SAMPLE_DATA / "rendered").exists()
    assert not list(SAMPLE_DATA.glob(".rendered*"))


# -- counts and bytes ----------------------------------------------------------------------------
def test_summaries_count_what_each_dialect_rewrote(
    renders: dict[str, tuple[Path, dict[str, Any]]], source: dict[str, Any]
) -> None:
    emails, audit = source["emails"], source["audit"]
    outbound = [e for e in emails if e["direction"] == "outbound"]
    decisions = [e for e in audit if e["action"] in DECISIONS["canonical"]]
    email_entries = [e for e in audit if e["resource_type"] == "email"]
    links = sum("[Unsubscribe](" in e["markdown"] for e in outbound)
    footers = sum(
        "[Unsubscribe](" in e["markdown"] or "1200 Harbor" in e["markdown"] for e in outbound
    )
    # Everyone approved changes identity under key/session but the self-approving key.
    re_identified = sum(e["approved_by"] not in (None, LEGACY_KEY) for e in outbound)
    expected = {
        "canonical": dict(
            audit_entries=len(audit),
            audit_rewritten=0,
            audit_inserted=0,
            audit_dropped=0,
            bodies_rewritten=0,
            tags_rewritten=0,
            approved_by_rewritten=0,
            mutations_dropped=0,
            archive_resigned=0,
        ),
        "decide-key": dict(
            audit_entries=len(audit),
            audit_rewritten=len(decisions),
            audit_inserted=0,
            audit_dropped=0,
            bodies_rewritten=links,
            tags_rewritten=len(outbound),
            approved_by_rewritten=re_identified,
            mutations_dropped=0,
            archive_resigned=20,
        ),
        "past-tense-session": dict(
            audit_entries=len(audit),
            audit_rewritten=len(audit),
            audit_inserted=0,
            audit_dropped=0,
            bodies_rewritten=footers,
            tags_rewritten=len(outbound),
            approved_by_rewritten=re_identified,
            mutations_dropped=0,
            archive_resigned=20,
        ),
        "mailbox-update": dict(
            audit_entries=len(audit) + 12,
            audit_rewritten=len(decisions) + 1,
            audit_inserted=12,
            audit_dropped=0,
            bodies_rewritten=footers,
            tags_rewritten=len(outbound),
            approved_by_rewritten=0,
            mutations_dropped=0,
            archive_resigned=20,
        ),
        "no-email-entries": dict(
            audit_entries=len(audit) - len(email_entries),
            audit_rewritten=0,
            audit_inserted=0,
            audit_dropped=len(email_entries),
            bodies_rewritten=0,
            tags_rewritten=0,
            approved_by_rewritten=re_identified,
            mutations_dropped=2,
            archive_resigned=0,
        ),
    }
    for name, (_, summary) in renders.items():
        assert summary["dialect"] == name
        assert summary["emails"] == len(emails)
        assert {k: summary[k] for k in expected[name]} == expected[name], name


def test_canonical_is_the_source_byte_for_byte(
    renders: dict[str, tuple[Path, dict[str, Any]]],
) -> None:
    folder, _ = renders["canonical"]
    assert files_of(folder) == files_of(SAMPLE_DATA)


@pytest.mark.parametrize("name", NON_CANONICAL)
def test_rendering_twice_gives_the_same_bytes(
    name: str, renders: dict[str, tuple[Path, dict[str, Any]]], tmp_path: Path
) -> None:
    folder, summary = renders[name]
    assert render(None, tmp_path / "again", DIALECTS[name]) == summary
    assert files_of(tmp_path / "again") == files_of(folder)


# -- facts ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NON_CANONICAL)
def test_emails_keep_their_facts(
    name: str, renders: dict[str, tuple[Path, dict[str, Any]]], source: dict[str, Any]
) -> None:
    folder, _ = renders[name]
    d = DIALECTS[name]
    before = source["emails"]
    after = read_jsonl(folder / "multimail" / "emails.jsonl")
    assert [e["id"] for e in after] == [e["id"] for e in before]
    facts = (
        "direction",
        "mailbox_id",
        "from",
        "to",
        "subject",
        "received_at",
        "status",
        "delivered_at",
        "approved_at",
        "bounced_at",
        "thread_id",
        "attachments",
    )
    inbound_lines = [
        line
        for line in (SAMPLE_DATA / "multimail" / "emails.jsonl").read_text().splitlines()
        if '"direction":"inbound"' in line
    ]
    rendered_lines = set((folder / "multimail" / "emails.jsonl").read_text().splitlines())
    assert inbound_lines and all(line in rendered_lines for line in inbound_lines)
    approvers = {
        e["resource_id"]: e["actor_key_id"]
        for e in source["audit"]
        if e["action"] == "oversight.approved"
    }
    for old, new in zip(before, after, strict=True):
        assert {k: new.get(k) for k in facts} == {k: old.get(k) for k in facts}, old["id"]
        if old["direction"] != "outbound":
            assert new == old
            continue
        assert has_opt_out(new["markdown"]) == has_opt_out(old["markdown"]), old["id"]
        assert has_postal(new["markdown"]) == has_postal(old["markdown"]), old["id"]
        assert (new["approved_by"] is None) == (old["approved_by"] is None)
        if old["approved_by"] is not None:
            if d.approver == "person":
                assert new["approved_by"] == old["approved_by"]
            elif d.approver == "key":
                assert new["approved_by"] == approvers.get(old["id"], OVERSIGHT_KEY)
            elif old["id"] == SELF_APPROVED:
                assert new["approved_by"] == LEGACY_KEY
            else:
                assert re.fullmatch(r"hps_[0-9a-f]{20}", new["approved_by"]), new["approved_by"]
        tags, old_tags = dict(new["tags"]), dict(old["tags"])
        category = old_tags.pop("category")
        if d.type_tags == "none":
            assert tags == old_tags
        elif d.type_tags == "type":
            kind = "marketing" if category == "promotion" else "transactional"
            assert tags == {**old_tags, "type": kind}
    by_id = {e["id"]: e for e in after}
    assert by_id[SELF_APPROVED]["approved_by"] == LEGACY_KEY
    if d.approver == "key":
        assert by_id[NO_APPROVAL_ENTRY]["approved_by"] == OVERSIGHT_KEY


@pytest.mark.parametrize("name", NON_CANONICAL)
def test_audit_log_keeps_its_facts(
    name: str, renders: dict[str, tuple[Path, dict[str, Any]]], source: dict[str, Any]
) -> None:
    folder, _ = renders[name]
    d = DIALECTS[name]
    text = (folder / "multimail" / "audit_log.jsonl").read_text(encoding="utf-8")
    after = read_jsonl(folder / "multimail" / "audit_log.jsonl")
    before = source["audit"]
    assert "oversight.approved" not in text and "oversight.rejected" not in text
    keys = [(e["created_at"], e["id"]) for e in after]
    assert keys == sorted(keys), "the audit log is oldest first"
    assert len({e["id"] for e in after}) == len(after)

    # Every source entry the dialect keeps is there under its id, at its time.
    kept = [
        e
        for e in before
        if not (d.vocabulary == "no_email_entries" and e["resource_type"] == "email")
    ]
    new_by_id = {e["id"]: e for e in after}
    for old in kept:
        new = new_by_id[old["id"]]
        assert (new["created_at"], new["resource_id"]) == (old["created_at"], old["resource_id"])
    if d.vocabulary == "no_email_entries":
        assert len(after) == len(kept)
        assert not any(e["resource_type"] == "email" for e in after)
        assert new_by_id[MODE_CHANGE] == next(e for e in before if e["id"] == MODE_CHANGE)
        return

    # Decisions: same email, same time, same kind, same reason; who decided per the axis.
    old_decisions = {e["id"]: e for e in before if decision_of(e, "canonical")}
    new_decisions = {e["id"]: e for e in after if decision_of(e, d.vocabulary)}
    assert new_decisions.keys() == old_decisions.keys()
    for entry_id, old in old_decisions.items():
        new = new_decisions[entry_id]
        assert decision_of(new, d.vocabulary) == decision_of(old, "canonical")
        assert new["metadata"]["reason"] == old["metadata"]["reason"]
        if d.vocabulary == "decide":
            assert new["metadata"]["email_id"] == old["resource_id"]
        if d.approver == "person":
            assert new["metadata"]["reviewer"] == old["metadata"]["reviewer"]
            assert new["actor_key_id"] == old["actor_key_id"]
            continue
        assert "reviewer" not in new["metadata"]
        if d.approver == "session" and old["actor_key_id"] == OVERSIGHT_KEY:
            assert new["actor_key_id"] is None
            assert new["metadata"]["via"] == "approval_page"
            assert re.fullmatch(r"hps_[0-9a-f]{20}", new["metadata"]["session_id"])
        else:
            assert new["actor_key_id"] == old["actor_key_id"]
    # Session ids tie each approved email to its approval entry.
    if d.approver == "session":
        emails = {e["id"]: e for e in read_jsonl(folder / "multimail" / "emails.jsonl")}
        for new in new_decisions.values():
            approved_by = emails[new["resource_id"]]["approved_by"]
            if approved_by is not None and new["actor_key_id"] is None:
                assert approved_by == new["metadata"]["session_id"]

    # The one oversight mode change still says gated_send -> monitored.
    mode = new_by_id[MODE_CHANGE]
    meta = mode["metadata"]
    if d.vocabulary == "past_tense":
        assert mode["action"] == "mailbox.mode_updated"
        assert meta["changes"]["oversight_mode"] == {"from": "gated_send", "to": "monitored"}
        assert meta["changed_by"] == "ops@northwind.example"
    elif d.vocabulary == "mailbox_update":
        assert mode["action"] == "mailbox.updated"
        assert meta == {
            "changes": {"oversight_mode": ["gated_send", "monitored"]},
            "actor": "ops@northwind.example",
        }
    else:
        assert meta == {
            "from": "gated_send",
            "to": "monitored",
            "changed_by": "ops@northwind.example",
        }


def test_mailbox_update_decoys_change_other_fields_before_the_quarter(
    renders: dict[str, tuple[Path, dict[str, Any]]], source: dict[str, Any]
) -> None:
    folder, _ = renders["mailbox-update"]
    source_ids = {e["id"] for e in source["audit"]}
    decoys = [
        e for e in read_jsonl(folder / "multimail" / "audit_log.jsonl") if e["id"] not in source_ids
    ]
    mailboxes = json.loads((folder / "multimail" / "mailboxes.json").read_text())["mailboxes"]
    assert len(decoys) == 3 * len(mailboxes)
    final: dict[tuple[str, str], Any] = {}
    for e in decoys:
        assert e["action"] == "mailbox.updated" and e["resource_type"] == "mailbox"
        assert e["actor_key_id"] == "system" and e["metadata"]["actor"] == "system"
        assert "oversight_mode" not in e["metadata"]["changes"]
        assert e["created_at"] < "2026-07-01"
        # ULID-like: Crockford base32, the first 10 characters are the millisecond time.
        assert len(e["id"]) == 26 and set(e["id"]) <= set(CROCKFORD)
        ms = 0
        for char in e["id"][:10]:
            ms = ms * 32 + CROCKFORD.index(char)
        assert ms == _epoch_ms(e["created_at"])
        for field, (_, new) in e["metadata"]["changes"].items():
            final[(e["resource_id"], field)] = new
    for mb in mailboxes:  # the decoys end where mailboxes.json is
        assert final[(mb["id"], "display_name")] == mb["display_name"]
        assert final[(mb["id"], "signature_block")] == mb["signature_block"]
    for name in ("canonical", "decide-key", "past-tense-session"):
        assert (
            "mailbox.updated"
            not in (renders[name][0] / "multimail" / "audit_log.jsonl").read_text()
        )


def _epoch_ms(iso: str) -> int:
    parsed = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (parsed - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


@pytest.mark.parametrize("name", list(DIALECTS))
def test_mutations_still_apply(name: str, renders: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    folder, _ = renders[name]
    mutations = json.loads((folder / "multimail" / "mutations.json").read_text())["mutations"]
    if name == "no-email-entries":
        assert mutations == []  # both targets were email entries
        return
    source = json.loads((SAMPLE_DATA / "multimail" / "mutations.json").read_text())
    assert mutations == source["mutations"]
    entries = {e["id"]: e for e in read_jsonl(folder / "multimail" / "audit_log.jsonl")}
    for m in mutations:
        assert m["id"] in entries
        if m["op"] == "set":
            assert m["path"] == ["metadata", "reason"] and "reason" in entries[m["id"]]["metadata"]
    with SandboxServer(folder) as server:
        assert server.apply_mutations() == 2


def test_archive_is_resigned_from_the_rendered_bodies(
    renders: dict[str, tuple[Path, dict[str, Any]]],
) -> None:
    folder, _ = renders["past-tense-session"]
    expected = json.loads((folder / "archive" / "expected.json").read_text())
    assert (folder / "archive" / "expected.json").read_bytes() == (
        SAMPLE_DATA / "archive" / "expected.json"
    ).read_bytes()
    emails = {e["id"]: e for e in read_jsonl(folder / "multimail" / "emails.jsonl")}
    checked = 0
    for case in expected["messages"]:
        if case["case"] != "clean" or not case["source"].startswith("eml/"):
            continue
        message = email.message_from_bytes(
            (folder / "archive" / case["source"]).read_bytes(), policy=email.policy.default
        )
        body = message.get_content().replace("\r\n", "\n").rstrip()
        assert body == emails[case["email_id"]]["markdown"].rstrip()
        checked += "-- \nNorthwind Supply Co." in body
    assert checked >= 1  # at least one re-signed outreach copy carries the new signature


# -- serving a rendering ----------------------------------------------------------------------
def test_sandbox_serves_a_decide_key_rendering() -> None:
    with rendered("decide-key") as folder, SandboxServer(folder, port=0) as server:
        with httpx.Client(
            base_url=server.base_url,
            headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
            timeout=5,
        ) as client:
            actions: set[str] = set()
            cursor = None
            for _ in range(1000):
                page = client.get(
                    "/v1/audit-log", params={"limit": 100, **({"cursor": cursor} if cursor else {})}
                ).json()
                actions |= {e["action"] for e in page["entries"]}
                cursor = page["cursor"]
                if cursor is None:
                    break
            assert "oversight.decide" in actions and "oversight.approved" not in actions
            support = "01KJQ1J020PE5ACQPKH6VMT3XH"
            detail = client.get(f"/v1/mailboxes/{support}/emails/{SELF_APPROVED}")
            assert detail.status_code == 200
            assert detail.json()["approved_by"] == LEGACY_KEY
            assert "category" not in detail.json()["tags"]
    assert not folder.exists()


def test_sandbox_cli_renders_and_removes_its_folder(tmp_path: Path) -> None:
    proc = start_sandbox("--port", "0", "--dialect", "decide-key", TMPDIR=str(tmp_path))
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "dialect decide-key" in first, proc.stderr.read() if proc.stderr else first
        url = first.split(" on ", 1)[1].split(" ", 1)[0]
        assert any(p.name.startswith("auditkit-decide-key-") for p in tmp_path.iterdir())
        response = httpx.get(
            f"{url}/v1/audit-log",
            params={"limit": 100},
            headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
        )
        assert response.status_code == 200
        assert all(e["action"] != "oversight.approved" for e in response.json()["entries"])
        out, err = interrupt(proc)
        assert proc.returncode == 0, err
        assert "stopped" in out
    finally:
        kill_if_running(proc)
    assert list(tmp_path.iterdir()) == []


def test_sandbox_cli_unknown_dialect_exits_3() -> None:
    result = CliRunner().invoke(cli, ["sandbox", "--port", "0", "--dialect", "klingon"])
    assert result.exit_code == 3
    assert "unknown dialect 'klingon'; known dialects: canonical" in result.output


def test_module_entry_point(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dialect", "canonical", "--out", str(tmp_path / "c")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["dialect"] == "canonical" and summary["emails_rewritten"] == 0
    assert main(["--list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in DIALECTS)
    with pytest.raises(SystemExit) as exit_info:
        main(["--dialect", "klingon", "--out", str(tmp_path / "k")])
    assert exit_info.value.code == 2
    assert "known dialects" in capsys.readouterr().err
