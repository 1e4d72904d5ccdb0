"""DKIM logic: key records, keys files, verification outcomes with pinned keys and injected DNS."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from auditkit.devtools.archive_sample import public_key_record
from auditkit.dkim import (
    BODY_HASH_MISMATCH,
    SignatureResult,
    domains_aligned,
    sign_message,
    verify_message,
)
from auditkit.dkim_keys import (
    DnsKeyLookup,
    KeyLookup,
    KeyRecord,
    PinnedKeyLookup,
    key_record_id,
    load_keys_file,
    parse_key_record,
)
from auditkit.errors import ConfigError, SourceError
from tests.conftest import SAMPLE_DATA

KEY = (SAMPLE_DATA / "dns" / "test-dkim-private.pem").read_bytes()
WRONG_KEY = (SAMPLE_DATA / "dns" / "test-dkim-wrong-private.pem").read_bytes()
RECORD = public_key_record(KEY)
WRONG_RECORD = public_key_record(WRONG_KEY)
SIGNED_AT = datetime(2026, 8, 3, 14, 0, tzinfo=UTC)
T = int(SIGNED_AT.timestamp())
NAME = "mm2026._domainkey.northwind.example"

MESSAGE = (
    b"From: Support <support@northwind.example>\r\n"
    b"To: buyer@example.com\r\n"
    b"Subject: Your order NW-1042 has shipped\r\n"
    b"Date: Mon, 03 Aug 2026 14:00:00 +0000\r\n"
    b"Message-ID: <em_0042@mail.multimail.dev>\r\n"
    b"X-MultiMail-Id: em_0042\r\n"
    b"\r\n"
    b"Hello,\r\n\r\nYour order has shipped.\r\n"
)


def signed(raw: bytes = MESSAGE, key: bytes = KEY, expires: int | None = None) -> bytes:
    return sign_message(
        raw,
        selector="mm2026",
        domain="northwind.example",
        private_key_pem=key,
        timestamp=T,
        expires=expires,
    )


def pinned(*texts: str) -> PinnedKeyLookup:
    return PinnedKeyLookup(
        KeyRecord("mm2026", "northwind.example", t, SIGNED_AT, "test", "keys-file") for t in texts
    )


def verify(raw: bytes, lookup: KeyLookup, reference: datetime = SIGNED_AT) -> list[SignatureResult]:
    return verify_message(raw, lookup, from_domain="northwind.example", reference_time=reference)


def test_parse_key_record_reports_type_size_and_problems() -> None:
    info = parse_key_record(RECORD)
    assert (info.key_type, info.bits, info.problem) == ("rsa", 2048, None)
    assert parse_key_record("v=DKIM1; k=rsa; p=").revoked
    assert parse_key_record("v=DKIM1; k=rsa").problem == "key record has no p= tag"
    assert "not DKIM1" in (parse_key_record("v=DKIM2; p=AAAA").problem or "")
    assert "not valid base64" in (parse_key_record("v=DKIM1; p=!!notbase64").problem or "")
    assert "not an RSA public key" in (parse_key_record("v=DKIM1; p=AAAA").problem or "")
    assert parse_key_record("v=DKIM1; k=ed25519; p=" + "A" * 43 + "=").bits == 256
    assert "unknown key type" in (parse_key_record("v=DKIM1; k=dsa; p=AAAA").problem or "")


def test_signing_is_deterministic_for_a_fixed_timestamp() -> None:
    assert signed() == signed()
    assert signed() != sign_message(
        MESSAGE, selector="mm2026", domain="northwind.example", private_key_pem=KEY, timestamp=T + 1
    )


def test_valid_signature_passes_with_pinned_key_and_names_the_record() -> None:
    [r] = verify(signed(), pinned(RECORD))
    assert (r.result, r.reason, r.domain, r.selector, r.aligned_with_from) == (
        "pass",
        None,
        "northwind.example",
        "mm2026",
        True,
    )
    assert r.key_record is not None and r.key_record.record_text == RECORD
    assert r.key_bits == 2048
    assert "subject" in r.signed_headers and "x-multimail-id" not in r.signed_headers


def test_body_changed_after_signing_fails_on_the_body_hash() -> None:
    raw = signed().replace(b"has shipped.", b"has been cancelled.")
    [r] = verify(raw, pinned(RECORD))
    assert (r.result, r.reason) == ("fail", BODY_HASH_MISMATCH)
    assert r.body_hash_failed


def test_subject_changed_after_signing_fails_on_the_header_signature() -> None:
    raw = signed().replace(b"Subject: Your order", b"Subject: URGENT Your order")
    [r] = verify(raw, pinned(RECORD))
    assert r.result == "fail" and "signature does not verify" in (r.reason or "")
    assert not r.body_hash_failed


def test_message_signed_with_another_key_fails() -> None:
    [r] = verify(signed(key=WRONG_KEY), pinned(RECORD))
    assert r.result == "fail" and "different key" in (r.reason or "")


def test_missing_key_is_a_permerror_never_a_pass() -> None:
    [r] = verify(signed(), pinned())
    assert (r.result, r.reason) == ("permerror", f"no key record for {NAME}")
    [r] = verify(signed(), DnsKeyLookup(lambda name: None))
    assert (r.result, r.reason) == ("permerror", f"no key record for {NAME}")


def test_revoked_key_is_a_permerror() -> None:
    [r] = verify(signed(), pinned("v=DKIM1; k=rsa; p="))
    assert r.result == "permerror" and "revoked" in (r.reason or "")


def test_expiry_is_judged_against_the_message_time_not_the_wall_clock() -> None:
    raw = signed(expires=T + 600)  # valid ten minutes; the wall clock is long past that
    [r] = verify(raw, pinned(RECORD), reference=SIGNED_AT + timedelta(minutes=5))
    assert r.result == "pass" and r.expires_at == SIGNED_AT + timedelta(minutes=10)
    [r] = verify(raw, pinned(RECORD), reference=SIGNED_AT + timedelta(hours=1))
    assert r.result == "fail" and (r.reason or "").startswith("signature expired")


def test_expiry_before_timestamp_is_a_permerror() -> None:
    [r] = verify(signed(expires=T - 1), pinned(RECORD))
    assert r.result == "permerror" and "before t=" in (r.reason or "")


def test_injected_dns_is_queried_once_per_name_and_the_record_is_captured() -> None:
    queries: list[str] = []

    def resolver(name: str) -> list[str]:
        queries.append(name)
        return ["v=spf1 -all", RECORD]  # an unrelated TXT string at the same name is ignored

    fetched = datetime(2026, 11, 1, tzinfo=UTC)
    lookup = DnsKeyLookup(resolver, resolver_label="192.0.2.53", clock=lambda: fetched)
    for _ in range(3):
        [r] = verify(signed(), lookup)
        assert r.result == "pass"
    assert queries == [NAME]
    rec = r.key_record
    assert rec is not None
    assert (rec.record_text, rec.resolver, rec.source, rec.fetched_at) == (
        RECORD,
        "192.0.2.53",
        "dns",
        fetched,
    )
    assert rec.id == key_record_id("mm2026", "northwind.example", RECORD)


def test_dns_failure_is_a_temperror() -> None:
    def resolver(name: str) -> list[str]:
        raise SourceError(f"DNS lookup of {name} TXT failed: Timeout")

    [r] = verify(signed(), DnsKeyLookup(resolver))
    assert r.result == "temperror" and "Timeout" in (r.reason or "")


def test_rotated_key_fails_but_any_pinned_history_record_can_verify() -> None:
    [r] = verify(signed(), pinned(WRONG_RECORD))
    assert r.result == "fail"
    [r] = verify(signed(), pinned(WRONG_RECORD, RECORD))  # rotated key first, old key second
    assert r.result == "pass" and r.key_record is not None and r.key_record.record_text == RECORD


def test_unsigned_message_gets_one_none_result() -> None:
    [r] = verify(MESSAGE, pinned(RECORD))
    assert (r.index, r.result, r.domain) == (0, "none", None)


def test_every_signature_is_checked_in_order() -> None:
    raw = signed(signed(key=WRONG_KEY))  # outer (index 0) by the right key
    results = verify(raw, pinned(RECORD))
    assert [(r.index, r.result) for r in results] == [(0, "pass"), (1, "fail")]


def test_alignment_is_relaxed_equal_or_subdomain() -> None:
    assert domains_aligned("northwind.example", "northwind.example")
    assert domains_aligned("northwind.example", "mail.northwind.example")
    assert domains_aligned("mail.northwind.example", "northwind.example")
    assert domains_aligned("multimail.dev", "northwind.example") is False
    assert domains_aligned("northwind.example", None) is None
    [r] = verify_message(
        signed(), pinned(RECORD), from_domain="other.example", reference_time=SIGNED_AT
    )
    assert r.result == "pass" and r.aligned_with_from is False


def test_keys_file_text_format_with_zone_quoting_and_comments(tmp_path: Path) -> None:
    half = len(RECORD) // 2
    path = tmp_path / "keys.txt"
    path.write_text(
        "# pinned keys\n\n"
        f'mm2026._domainkey.northwind.example "{RECORD[:half]}" "{RECORD[half:]}"\n'
        f"old._domainkey.Northwind.Example. {WRONG_RECORD}\n",
        encoding="utf-8",
    )
    lookup = load_keys_file(path)
    assert [r.record_text for r in lookup("mm2026", "northwind.example")] == [RECORD]
    [old] = lookup("OLD", "northwind.example")
    assert (old.record_text, old.source, old.resolver) == (
        WRONG_RECORD,
        "keys-file",
        f"keys-file:{path}",
    )
    [r] = verify(signed(), lookup)
    assert r.result == "pass"


def test_keys_file_json_export_of_key_records(tmp_path: Path) -> None:
    rows = [
        {
            "id": "x",
            "selector": "mm2026",
            "domain": "northwind.example",
            "record_text": RECORD,
            "fetched_at": "2026-07-01T00:00:00Z",
            "resolver": "192.0.2.53",
            "source": "dns",
        },
        {
            "id": "y",
            "selector": "mm2026",
            "domain": "northwind.example",
            "record_text": WRONG_RECORD,
            "fetched_at": "2026-10-01T00:00:00+00:00",
            "resolver": "192.0.2.53",
            "source": "dns",
        },
    ]
    as_array, as_lines = tmp_path / "keys.json", tmp_path / "keys.jsonl"
    as_array.write_text(json.dumps(rows), encoding="utf-8")
    as_lines.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    for path in (as_array, as_lines):
        lookup = load_keys_file(path)
        records = lookup("mm2026", "northwind.example")
        assert [r.record_text for r in records] == [WRONG_RECORD, RECORD]  # newest capture first
        assert records[1].resolver == "192.0.2.53"
        [r] = verify(signed(), lookup)
        assert r.result == "pass"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("mm2026._domainkey.northwind.example\n", "expected `selector._domainkey.domain"),
        ("mm2026.northwind.example v=DKIM1; p=AAAA\n", "expected `selector._domainkey.domain"),
        (
            f"s._domainkey.d.example {RECORD}\ns._domainkey.d.example {WRONG_RECORD}\n",
            "listed twice",
        ),
        ('[{"selector": "s"}]', "needs string selector, domain and record_text"),
        ("[not json", "not valid JSON"),
    ],
)
def test_bad_keys_files_are_config_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "keys.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(
        ConfigError, match=message.replace("`", ".").replace("(", ".").replace(")", ".")
    ):
        load_keys_file(path)


def test_committed_keys_file_holds_the_test_key() -> None:
    lookup = load_keys_file(SAMPLE_DATA / "dns" / "keys.txt")
    assert [r.record_text for r in lookup("mm2026", "northwind.example")] == [RECORD]


def test_dnspython_resolver_maps_answers_and_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    """The production resolver, with dnspython's network call replaced (no test uses DNS)."""
    import dns.exception
    import dns.resolver

    from auditkit.dkim_keys import dnspython_txt_resolver

    class Rdata:
        def __init__(self, *parts: bytes) -> None:
            self.strings = parts

    half = len(RECORD) // 2
    outcomes: dict[str, object] = {
        NAME: [Rdata(RECORD[:half].encode(), RECORD[half:].encode())],
        "gone._domainkey.northwind.example": dns.resolver.NXDOMAIN(),
        "slow._domainkey.northwind.example": dns.exception.Timeout(),
    }
    asked: list[tuple[str, str]] = []

    def fake_resolve(self: object, qname: str, rdtype: str, **kwargs: object) -> object:
        asked.append((qname, rdtype))
        outcome = outcomes[qname]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(dns.resolver.Resolver, "resolve", fake_resolve)
    resolve, _label = dnspython_txt_resolver(timeout=1.0)
    assert resolve(NAME) == [RECORD]  # multi-string TXT joined
    assert resolve("gone._domainkey.northwind.example") is None
    with pytest.raises(SourceError, match="Timeout"):
        resolve("slow._domainkey.northwind.example")
    assert asked[0] == (NAME, "TXT")
    [r] = verify(signed(), DnsKeyLookup(resolve, resolver_label="test"))
    assert r.result == "pass"


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda raw: raw.replace(b"; s=mm2026;", b"; s=;", 1), "empty d= or s="),
        (
            lambda raw: raw.replace(b"; a=rsa-sha256;", b"; a=rsa-md5;", 1),
            "unknown signature algorithm",
        ),
        (
            lambda raw: raw.replace(b"DKIM-Signature: v=1;", b"DKIM-Signature: v=1; v=2;", 1),
            "malformed",
        ),
    ],
)
def test_malformed_signatures_are_permerrors(mangle: Any, reason: str) -> None:
    [r] = verify(mangle(signed()), pinned(RECORD))
    assert r.result == "permerror" and reason in (r.reason or "")
