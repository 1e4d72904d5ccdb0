"""Sent-mail archive: readers, matching, body comparison, storage, re-verification and the CLI."""

from __future__ import annotations

import json
import mailbox
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import auditkit.cli.archive  # noqa: F401  (registers harvest-archive on the group)
from auditkit.archive import (
    EmailIndex,
    HarvestedEmail,
    compare_body,
    harvest_archive,
    independent_dkim_by_email,
    iter_archive,
    parse_message,
    raw_message,
    stored_key_lookup,
)
from auditkit.cli.base import cli
from auditkit.devtools.archive_sample import (
    SourceEmail,
    generate,
    load_source_emails,
    public_key_record,
    synthetic_source_emails,
)
from auditkit.dkim import sign_message
from auditkit.dkim_keys import DnsKeyLookup, KeyRecord, PinnedKeyLookup, load_keys_file
from auditkit.evidence_sql import ALTERED_CONTENT_SQL, INDEPENDENT_DKIM_SQL, MISSING_IDENTITY_SQL
from auditkit.store import Store, canonical_json, sha256_hex
from tests.conftest import ROOT, SAMPLE_DATA

KEY = (SAMPLE_DATA / "dns" / "test-dkim-private.pem").read_bytes()
WRONG_KEY = (SAMPLE_DATA / "dns" / "test-dkim-wrong-private.pem").read_bytes()
RECORD, WRONG_RECORD = public_key_record(KEY), public_key_record(WRONG_KEY)
ARCHIVE = SAMPLE_DATA / "archive"
KEYS_FILE = SAMPLE_DATA / "dns" / "keys.txt"
EXPECTED = json.loads((ARCHIVE / "expected.json").read_text(encoding="utf-8"))
SENT = datetime(2026, 8, 3, 14, 0, tzinfo=UTC)


def email_row(
    email_id: str,
    *,
    to: list[str],
    subject: str,
    body: str,
    delivered_at: datetime | None,
    created_at: datetime | None = None,
    direction: str = "outbound",
) -> dict[str, Any]:
    """A harvested multimail_emails row with the NOT NULL provenance columns filled in."""
    raw = canonical_json({"id": email_id, "subject": subject})
    now = datetime(2026, 10, 1, tzinfo=UTC)
    return {
        "id": email_id,
        "mailbox_id": "mb_support",
        "direction": direction,
        "from_address": "support@northwind.example",
        "to_addresses": to,
        "subject": subject,
        "status": "delivered" if delivered_at else "approved",
        "body_markdown": body,
        "created_at": created_at or (delivered_at or SENT) - timedelta(minutes=30),
        "delivered_at": delivered_at,
        "approved_at": (delivered_at or SENT) - timedelta(minutes=5),
        "source_shape": "v1",
        "is_final": delivered_at is not None,
        "first_harvested_at": now,
        "raw": raw,
        "raw_sha256": sha256_hex(raw),
        "run_id": "harvest-test",
        "harvested_at": now,
    }


def rows_for(emails: list[SourceEmail]) -> list[dict[str, Any]]:
    return [
        email_row(
            e.id, to=list(e.to), subject=e.subject, body=e.markdown, delivered_at=e.delivered_at
        )
        for e in emails
    ]


def sample_source_emails() -> list[SourceEmail]:
    """The emails the committed archive was generated from (sample quarter or synthetic)."""
    if EXPECTED["source_emails"].startswith("synthetic"):
        return synthetic_source_emails()
    return load_source_emails(ROOT / EXPECTED["source_emails"])


def make_store(path: Path, rows: list[dict[str, Any]]) -> Store:
    store = Store(path)
    with store.transaction():
        store.upsert("multimail_emails", rows)
    return store


@pytest.fixture
def sample_store(tmp_path: Path) -> Iterator[Store]:
    # Every delivered outbound email of the quarter, so heuristic matching meets look-alikes.
    store = make_store(tmp_path / "store.duckdb", rows_for(sample_source_emails()))
    yield store
    store.close()


def message(
    email_id: str | None,
    *,
    to: str = "buyer@example.com",
    subject: str = "Your order NW-1042",
    date: str = "Mon, 03 Aug 2026 14:00:00 +0000",
    body: str = "Hello,\n\nYour order has shipped.\n",
    message_id: str | None = None,
    identity: bool = True,
    sign_key: bytes | None = KEY,
) -> bytes:
    message_id = message_id or f"<{email_id or 'x'}@mail.multimail.dev>"
    headers = [
        "From: Support <support@northwind.example>",
        f"To: {to}",
        f"Subject: {subject}",
        f"Date: {date}",
        f"Message-ID: {message_id}",
    ]
    if email_id:
        headers.append(f"X-MultiMail-Id: {email_id}")
    if identity:
        headers.append("X-MultiMail-Identity: eyJhaV9nZW5lcmF0ZWQiOnRydWV9.c2ln")
    raw = (
        "\r\n".join(headers)
        + "\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + body.replace("\n", "\r\n")
    ).encode()
    if sign_key is None:
        return raw
    return sign_message(
        raw,
        selector="mm2026",
        domain="northwind.example",
        private_key_pem=sign_key,
        timestamp=int(SENT.timestamp()) - 5,
    )


# -- readers ---------------------------------------------------------------------------------


def test_reads_eml_mbox_and_maildir_one_message_at_a_time(tmp_path: Path) -> None:
    raws = [message(f"em_{n}") for n in range(5)]
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "a.eml").write_bytes(raws[0])
    box = mailbox.mbox(tmp_path / "exports" / "journal.mbox")
    for raw in raws[1:3]:
        box.add(raw)
    box.close()
    md = mailbox.Maildir(tmp_path / "exports" / "Maildir")
    for raw in raws[3:]:
        md.add(raw)
    (tmp_path / "exports" / "notes.txt").write_text("not mail", encoding="utf-8")

    found = list(iter_archive([tmp_path / "exports"]))
    assert sorted(parse_message(m.raw, m.source_path).multimail_id or "" for m in found) == [
        f"em_{n}" for n in range(5)
    ]
    sources = [m.source_path.replace(str(tmp_path / "exports"), "") for m in found]
    assert all(s.startswith("/Maildir#") for s in sources[:2])
    assert sources[2:] == ["/a.eml", "/journal.mbox#0", "/journal.mbox#1"]
    # mbox and Maildir hand back the message bytes (LF line endings), still verifiable.
    assert all(m.raw.replace(b"\n", b"\r\n") in raws or m.raw in raws for m in found)
    assert list(iter_archive([tmp_path / "exports"])) == found  # stable order


def test_missing_archive_path_is_a_config_error(tmp_path: Path) -> None:
    from auditkit.errors import ConfigError

    with pytest.raises(ConfigError, match="does not exist"):
        list(iter_archive([tmp_path / "nope"]))


# -- matching and body comparison ------------------------------------------------------------


def harvested(
    email_id: str,
    *,
    to: tuple[str, ...] = ("buyer@example.com",),
    subject: str = "Your order NW-1042",
    created: datetime = SENT - timedelta(hours=2),
    delivered: datetime | None = SENT,
) -> HarvestedEmail:
    return HarvestedEmail(
        email_id, to, subject, created, delivered, "Hello,\n\nYour order has shipped.\n"
    )


def test_match_by_multimail_id_header_then_message_id() -> None:
    index = EmailIndex([harvested("em_1"), harvested("em_2", subject="Other")])
    m = index.match(parse_message(message("em_2"), "x"), timedelta(minutes=60))
    assert (m.method, m.email.id if m.email else None) == ("header", "em_2")
    m = index.match(
        parse_message(message(None, message_id="<em_1@mail.multimail.dev>"), "x"),
        timedelta(minutes=60),
    )
    assert (m.method, m.email.id if m.email else None) == ("header", "em_1")


def test_heuristic_match_uses_recipients_subject_and_send_time() -> None:
    index = EmailIndex([harvested("em_1"), harvested("em_2", to=("someone@example.com",))])
    raw = message(
        None,
        message_id="<abc@pm.example>",
        to="Buyer <BUYER@example.com>",
        subject="Your  order NW-1042",
    )
    m = index.match(parse_message(raw, "x"), timedelta(minutes=60))
    assert (m.method, m.candidates) == ("heuristic", ("em_1",))
    late = message(None, message_id="<abc@pm.example>", date="Mon, 03 Aug 2026 16:00:00 +0000")
    assert index.match(parse_message(late, "x"), timedelta(minutes=60)).method == "none"
    assert index.match(parse_message(late, "x"), timedelta(minutes=180)).method == "heuristic"


def test_two_plausible_emails_make_an_ambiguous_match_never_a_guess() -> None:
    index = EmailIndex(
        [harvested("em_1"), harvested("em_2", delivered=SENT + timedelta(minutes=2))]
    )
    m = index.match(
        parse_message(message(None, message_id="<abc@pm.example>"), "x"), timedelta(minutes=60)
    )
    assert (m.method, m.email, m.candidates) == ("ambiguous", None, ("em_1", "em_2"))


def test_body_comparison_normalises_whitespace_and_summarises_changes() -> None:
    assert compare_body(
        "Hello,\r\n\r\nYour  order has shipped.\r\n", "Hello,\n\nYour order has\nshipped."
    ) == (True, None)
    ok, summary = compare_body(
        "Hello, your order has shipped. Reply today for 40% off.", "Hello, your order has shipped."
    )
    assert ok is False and summary is not None
    assert (
        summary.startswith("content changed after approval")
        and "'Reply today for 40% off.'" in summary
    )
    assert compare_body("anything", None) == (None, None)
    assert compare_body(None, "approved")[0] is None


# -- the run and the store -------------------------------------------------------------------


def test_sample_archive_gives_the_expected_results(sample_store: Store) -> None:
    summary = harvest_archive(sample_store, [ARCHIVE], load_keys_file(KEYS_FILE), run_id="r1")
    assert summary.messages == len(EXPECTED["messages"]) == summary.new_messages
    got = {
        r[0]: r[1:]
        for r in sample_store.query(
            "SELECT m.email_id, m.match_method, r.result, r.reason, m.body_matches_approved, "
            "m.identity_header IS NOT NULL, m.source_path "
            "FROM archive_messages m JOIN archive_dkim_results r USING (sha256)"
        )
    }
    for exp in EXPECTED["messages"]:
        method, result, reason, body_ok, has_identity, source = got[exp["email_id"]]
        assert (method, result, body_ok, has_identity) == (
            exp["match_method"],
            exp["dkim_result"],
            exp["body_matches_approved"],
            exp["has_identity_header"],
        ), exp
        assert (exp["reason_contains"] or "") in (reason or ""), exp
        assert source == str(ARCHIVE / exp["source"]).replace("/Maildir#", "/Maildir#"), exp
    assert sample_store.query("SELECT outcome, command FROM harvest_runs WHERE run_id = 'r1'") == [
        ("ok", "harvest-archive")
    ]
    [(key_id, source, resolver)] = sample_store.query(
        "SELECT id, source, resolver FROM dkim_key_records"
    )
    assert (source, resolver) == ("keys-file", f"keys-file:{KEYS_FILE}")
    assert {
        r[0] for r in sample_store.query("SELECT DISTINCT key_record_id FROM archive_dkim_results")
    } == {key_id}


def _store_content(store: Store) -> list[Any]:
    return [
        store.query(
            "SELECT * EXCLUDE (run_id, harvested_at) FROM archive_messages ORDER BY sha256"
        ),
        store.query(
            "SELECT * EXCLUDE (run_id, verified_at) FROM archive_dkim_results "
            "ORDER BY sha256, signature_index"
        ),
        store.query("SELECT * FROM dkim_key_records ORDER BY id"),
    ]


def test_rerun_and_duplicate_copies_store_each_message_once(
    sample_store: Store, tmp_path: Path
) -> None:
    lookup = load_keys_file(KEYS_FILE)
    first = harvest_archive(sample_store, [ARCHIVE], lookup, run_id="r1")
    before = _store_content(sample_store)
    extra = tmp_path / "copy.eml"
    extra.write_bytes(next(ARCHIVE.glob("eml/*.eml")).read_bytes())
    again = harvest_archive(sample_store, [ARCHIVE / "eml", ARCHIVE], lookup, run_id="r2")
    assert again.new_messages == 0 and again.duplicates_in_run == len(
        list(ARCHIVE.glob("eml/*.eml"))
    )
    assert _store_content(sample_store) == before
    assert sample_store.count("archive_messages") == first.messages
    assert harvest_archive(sample_store, [extra], lookup, run_id="r3").new_messages == 0


def test_raw_message_is_kept_compressed_and_byte_exact(sample_store: Store) -> None:
    harvest_archive(sample_store, [ARCHIVE / "eml"], load_keys_file(KEYS_FILE), run_id="r1")
    for path in sorted((ARCHIVE / "eml").glob("*.eml")):
        raw = path.read_bytes()
        assert raw_message(sample_store, sha256_hex(raw)) == raw
    [(total, stored)] = sample_store.query(
        "SELECT sum(size_bytes), sum(octet_length(raw_compressed)) FROM archive_messages"
    )
    assert stored < total


def test_parallel_verification_stores_the_same_results(sample_store: Store, tmp_path: Path) -> None:
    lookup = load_keys_file(KEYS_FILE)
    harvest_archive(sample_store, [ARCHIVE], lookup, run_id="r1", workers=1)
    serial = _store_content(sample_store)
    with make_store(tmp_path / "parallel.duckdb", rows_for(sample_source_emails())) as other:
        harvest_archive(other, [ARCHIVE], lookup, run_id="r1", workers=2, batch_size=7)
        assert _store_content(other) == serial


def test_key_captured_from_dns_reverifies_offline_after_rotation(tmp_path: Path) -> None:
    raw = message("em_1")
    (tmp_path / "mail").mkdir()
    (tmp_path / "mail" / "m.eml").write_bytes(raw)
    with make_store(
        tmp_path / "s.duckdb",
        [
            email_row(
                "em_1",
                to=["buyer@example.com"],
                subject="Your order NW-1042",
                body="Hello,\n\nYour order has shipped.\n",
                delivered_at=SENT,
            )
        ],
    ) as store:
        dns_now = {"text": RECORD}
        dns = DnsKeyLookup(
            lambda name: [dns_now["text"]],
            resolver_label="192.0.2.53",
            clock=lambda: datetime(2026, 8, 4, tzinfo=UTC),
        )
        harvest_archive(store, [tmp_path / "mail"], dns, run_id="r1")
        [(result, key_id)] = store.query("SELECT result, key_record_id FROM archive_dkim_results")
        assert result == "pass"
        [(selector, domain, text, resolver, source)] = store.query(
            "SELECT selector, domain, record_text, resolver, source FROM dkim_key_records "
            "WHERE id = ?",
            [key_id],
        )
        assert (selector, domain, text, resolver, source) == (
            "mm2026",
            "northwind.example",
            RECORD,
            "192.0.2.53",
            "dns",
        )

        dns_now["text"] = WRONG_RECORD  # the key rotates: live DNS no longer verifies the old mail
        rotated = DnsKeyLookup(lambda name: [dns_now["text"]], resolver_label="192.0.2.53")
        harvest_archive(store, [tmp_path / "mail"], rotated, run_id="r2")
        assert store.query("SELECT result FROM archive_dkim_results") == [("fail",)]
        assert store.count("dkim_key_records") == 2

        harvest_archive(store, [tmp_path / "mail"], stored_key_lookup(store), run_id="r3")
        assert store.query("SELECT result, key_record_id FROM archive_dkim_results") == [
            ("pass", key_id)
        ]


def test_control_queries_for_id_001_002_003(sample_store: Store) -> None:
    harvest_archive(sample_store, [ARCHIVE], load_keys_file(KEYS_FILE), run_id="r1")
    by_email = independent_dkim_by_email(sample_store)
    assert set(by_email) == {m["email_id"] for m in EXPECTED["messages"]}
    for exp in EXPECTED["messages"]:
        status, detail = by_email[exp["email_id"]]
        assert status == exp["dkim_result"], (exp, detail)
        assert "d=northwind.example s=mm2026" in detail
    body_hash_failed = {r[0] for r in sample_store.query(INDEPENDENT_DKIM_SQL) if r[3]}
    tampered = {
        m["email_id"] for m in EXPECTED["messages"] if m["case"] == "body_tampered_after_signing"
    }
    assert body_hash_failed == tampered

    altered = {r[0]: r[3:5] for r in sample_store.query(ALTERED_CONTENT_SQL)}
    assert set(altered) == {
        m["email_id"] for m in EXPECTED["messages"] if m["body_matches_approved"] is False
    }
    changed_before = next(
        m["email_id"] for m in EXPECTED["messages"] if m["case"] == "content_changed_before_signing"
    )
    assert altered[changed_before] == (True, False)
    assert all(altered[t] == (True, True) for t in tampered)

    missing = [r[0] for r in sample_store.query(MISSING_IDENTITY_SQL)]
    assert missing == [m["email_id"] for m in EXPECTED["messages"] if not m["has_identity_header"]]


def test_signature_not_aligned_with_from_is_not_a_pass(tmp_path: Path) -> None:
    raw = sign_message(
        message("em_1", sign_key=None),
        selector="s1",
        domain="esp.example",
        private_key_pem=KEY,
        timestamp=int(SENT.timestamp()),
    )
    (tmp_path / "m.eml").write_bytes(raw)
    row = email_row(
        "em_1", to=["buyer@example.com"], subject="Your order NW-1042", body="x", delivered_at=SENT
    )
    esp_key = KeyRecord("s1", "esp.example", RECORD, SENT, "test", "keys-file")
    with make_store(tmp_path / "s.duckdb", [row]) as store:
        harvest_archive(store, [tmp_path / "m.eml"], PinnedKeyLookup([esp_key]), run_id="r1")
        assert store.query("SELECT result, aligned_with_from FROM archive_dkim_results") == [
            ("pass", False)
        ]
        status, detail = independent_dkim_by_email(store)["em_1"]
        assert status == "fail" and "not aligned with the From domain" in detail


def test_missing_key_and_unsigned_mail_are_not_passes(tmp_path: Path) -> None:
    (tmp_path / "mail").mkdir()
    (tmp_path / "mail" / "signed.eml").write_bytes(message("em_1"))
    (tmp_path / "mail" / "unsigned.eml").write_bytes(message("em_2", sign_key=None, identity=False))
    rows = [
        email_row(
            i, to=["buyer@example.com"], subject="Your order NW-1042", body="x", delivered_at=SENT
        )
        for i in ("em_1", "em_2")
    ]
    with make_store(tmp_path / "s.duckdb", rows) as store:
        summary = harvest_archive(store, [tmp_path / "mail"], PinnedKeyLookup([]), run_id="r1")
        assert summary.dkim == {"none": 1, "permerror": 1} and summary.missing_identity == 1
        assert independent_dkim_by_email(store) == {
            "em_1": (
                "permerror",
                "d=northwind.example s=mm2026: no key record for "
                f"mm2026._domainkey.northwind.example ({tmp_path / 'mail' / 'signed.eml'})",
            ),
            "em_2": (
                "none",
                f"message has no DKIM-Signature header ({tmp_path / 'mail' / 'unsigned.eml'})",
            ),
        }
        assert store.count("dkim_key_records") == 0


# -- sample generator ----------------------------------------------------------------------------


def test_sample_archive_is_reproducible_from_its_generator(tmp_path: Path) -> None:
    out = tmp_path / "archive"
    doc = generate(
        out,
        sample_source_emails(),
        key_pem=KEY,
        wrong_key_pem=WRONG_KEY,
        source_label=EXPECTED["source_emails"],
    )
    assert doc["messages"] == EXPECTED["messages"]
    committed = sorted(p.relative_to(ARCHIVE) for p in ARCHIVE.rglob("*") if p.is_file())
    generated = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert generated == committed
    for rel in committed:
        assert (out / rel).read_bytes() == (ARCHIVE / rel).read_bytes(), rel
    cases = {m["case"] for m in EXPECTED["messages"]}
    assert {
        "body_tampered_after_signing",
        "wrong_key",
        "content_changed_before_signing",
        "no_identity_headers",
        "expired_signature",
        "subject_tampered_after_signing",
        "heuristic_match",
    } <= cases


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_end_to_end_with_pinned_keys(sample_store: Store, tmp_path: Path) -> None:
    db = sample_store.path
    sample_store.close()
    result = CliRunner().invoke(
        cli,
        ["harvest-archive", str(ARCHIVE), "--keys", str(KEYS_FILE), "--db", db, "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    expected_results: dict[str, int] = {}
    for m in EXPECTED["messages"]:
        expected_results[m["dkim_result"]] = expected_results.get(m["dkim_result"], 0) + 1
    assert out["dkim"] == dict(sorted(expected_results.items()))
    assert out["messages"] == out["new_messages"] == len(EXPECTED["messages"])
    assert out["body_mismatches"] == sum(
        m["body_matches_approved"] is False for m in EXPECTED["messages"]
    )
    assert out["missing_identity"] == sum(
        not m["has_identity_header"] for m in EXPECTED["messages"]
    )
    assert out["matched"]["heuristic"] == 1 and out["matched"]["none"] == 0

    text = CliRunner().invoke(cli, ["harvest-archive", str(ARCHIVE), "--stored-keys", "--db", db])
    assert text.exit_code == 0, text.output
    assert f"{len(EXPECTED['messages'])} read, 0 new" in text.output
    assert "body hash mismatch" in text.output


def test_cli_rejects_conflicting_key_options(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "harvest-archive",
            str(ARCHIVE),
            "--keys",
            str(KEYS_FILE),
            "--stored-keys",
            "--db",
            str(tmp_path / "s.duckdb"),
        ],
    )
    assert result.exit_code == 3 and "either --keys or --stored-keys" in result.output
    # A store that does not exist is not silently created: nothing could be matched in it.
    missing = CliRunner().invoke(
        cli, ["harvest-archive", str(ARCHIVE), "--stored-keys", "--db", str(tmp_path / "s.duckdb")]
    )
    assert missing.exit_code == 5 and "does not exist" in missing.output
    assert not (tmp_path / "s.duckdb").exists()
    Store(tmp_path / "s.duckdb").close()
    result = CliRunner().invoke(
        cli, ["harvest-archive", str(ARCHIVE), "--stored-keys", "--db", str(tmp_path / "s.duckdb")]
    )
    assert result.exit_code == 3 and "no captured key records" in result.output


def test_cli_help_has_examples() -> None:
    result = CliRunner().invoke(cli, ["harvest-archive", "--help"])
    assert (
        result.exit_code == 0
        and "Examples:" in result.output
        and "auditkit harvest-archive" in result.output
    )


def test_unreadable_archive_is_a_config_error(tmp_path: Path) -> None:
    from auditkit.errors import ConfigError

    broken = tmp_path / "Maildir"
    (broken / "cur").mkdir(parents=True)
    (broken / "new").mkdir()
    # A dangling link where a message file should be (a half-synced journal copy).
    (broken / "new" / "1.M1P1.host").symlink_to(tmp_path / "gone")
    with pytest.raises(ConfigError, match="cannot be read"):
        list(iter_archive([broken]))
