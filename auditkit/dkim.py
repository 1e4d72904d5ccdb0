"""DKIM verification of archived sent mail: per-signature results, expiry, and signing.

Pure logic, no store and no files. Key lookups are injected: a `dkim_keys.KeyLookup` turns
(selector, domain) into candidate `KeyRecord`s (from DNS, a keys file, or the store). The
record text that was used is returned with every result so it can be stored and the check
repeated offline after the key has rotated.

Expiry (`x=`) is judged against the message's own time, not the verification time: the
caller passes `reference_time` = MultiMail's `delivered_at` for the matched email, else the
message's `Date:` header, else the verification time. An archive is verified months after
sending; a signature that was valid when the mail went out must not turn into a failure
just because the auditor looked later. dkimpy's own wall-clock `x=`/`t=` checks are
therefore bypassed (we call `DKIM.verify_sig` after our own field validation).
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dkim
from dkim.util import InvalidTagValueList, parse_tag_value

from auditkit.dkim_keys import KeyLookup, KeyRecord, key_name, parse_key_record
from auditkit.errors import SourceError, one_line

logger = logging.getLogger(__name__)
# dkimpy logs key and signature detail at error level for conditions we report as results.
_DKIMPY_LOGGER = logging.getLogger(__name__ + ".dkimpy")

MIN_KEY_BITS = 1024
PASS, FAIL, NONE, TEMPERROR, PERMERROR = "pass", "fail", "none", "temperror", "permerror"
BODY_HASH_MISMATCH = "body hash mismatch: the body changed after signing"


def _exception_text(exc: BaseException) -> str:
    """A parser's complaint as one short line: it may quote the message's raw bytes, and
    it ends up in the store, the pack and the terminal."""
    return one_line(str(exc), 200)


def domains_aligned(signing_domain: str | None, from_domain: str | None) -> bool | None:
    """Relaxed alignment, approximated: equal, or one is a subdomain of the other."""
    if not signing_domain or not from_domain:
        return None
    d, f = signing_domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    return d == f or f.endswith("." + d) or d.endswith("." + f)


@dataclass(frozen=True)
class SignatureResult:
    """The outcome for one DKIM-Signature header (index 0 = topmost)."""

    index: int
    domain: str | None
    selector: str | None
    result: str  # pass | fail | none | temperror | permerror
    reason: str | None
    aligned_with_from: bool | None
    key_record: KeyRecord | None = None
    key_bits: int | None = None
    expires_at: datetime | None = None
    signed_headers: tuple[str, ...] = field(default=())

    @property
    def body_hash_failed(self) -> bool:
        return self.result == FAIL and (self.reason or "").startswith(BODY_HASH_MISMATCH)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("ascii", "replace").strip()


def verify_message(
    raw: bytes,
    lookup: KeyLookup,
    *,
    from_domain: str | None,
    reference_time: datetime,
    min_key_bits: int = MIN_KEY_BITS,
) -> list[SignatureResult]:
    """Verify every DKIM-Signature on `raw`; a message without one gets a single `none` row."""
    try:
        message = dkim.DKIM(raw, logger=_DKIMPY_LOGGER, minkey=min_key_bits)
    except dkim.DKIMException as exc:
        reason = f"message cannot be parsed: {_exception_text(exc)}"
        return [SignatureResult(0, None, None, PERMERROR, reason, None)]
    sig_headers = [h for h in message.headers if h[0].lower() == b"dkim-signature"]
    if not sig_headers:
        return [SignatureResult(0, None, None, NONE, "message has no DKIM-Signature header", None)]
    return [
        _verify_signature(message, index, header, lookup, from_domain, reference_time)
        for index, header in enumerate(sig_headers)
    ]


def _verify_signature(
    message: dkim.DKIM,
    index: int,
    header: tuple[bytes, bytes],
    lookup: KeyLookup,
    from_domain: str | None,
    reference_time: datetime,
) -> SignatureResult:
    try:
        sig = parse_tag_value(header[1])
    except InvalidTagValueList as exc:
        return SignatureResult(
            index, None, None, PERMERROR, f"malformed DKIM-Signature: {_exception_text(exc)}", None
        )
    domain = (_text(sig.get(b"d")) or "").lower() or None
    selector = _text(sig.get(b"s"))
    aligned = domains_aligned(domain, from_domain)

    def result(status: str, reason: str | None, **extra: Any) -> SignatureResult:
        return SignatureResult(index, domain, selector, status, reason, aligned, **extra)

    try:
        # dkimpy's checks minus t=/x=, which it compares with the wall clock; see module doc.
        dkim.validate_signature_fields({k: v for k, v in sig.items() if k not in (b"t", b"x")})
    except dkim.DKIMException as exc:
        return result(PERMERROR, f"invalid DKIM-Signature: {_exception_text(exc)}")
    timing_problem, expires_at = _check_times(sig)
    if timing_problem:
        return result(PERMERROR, timing_problem)
    if not domain or not selector:
        return result(PERMERROR, "invalid DKIM-Signature: empty d= or s=")
    signed = tuple(h.strip().lower() for h in (_text(sig[b"h"]) or "").split(":"))

    try:
        candidates = lookup(selector, domain)
    except SourceError as exc:
        return result(TEMPERROR, str(exc), expires_at=expires_at, signed_headers=signed)
    if not candidates:
        return result(
            PERMERROR,
            f"no key record for {key_name(selector, domain)}",
            expires_at=expires_at,
            signed_headers=signed,
        )

    first_failure: SignatureResult | None = None
    for record in candidates:
        outcome = _verify_with_key(message, sig, header, record, min_key_bits=message.minkey)
        status, reason, bits = outcome
        if status == PASS:
            passed = result(
                PASS,
                None,
                key_record=record,
                key_bits=bits,
                expires_at=expires_at,
                signed_headers=signed,
            )
            return apply_expiry(passed, reference_time)
        if first_failure is None:
            first_failure = result(
                status,
                reason,
                key_record=record,
                key_bits=bits,
                expires_at=expires_at,
                signed_headers=signed,
            )
    assert first_failure is not None
    return first_failure


def apply_expiry(result: SignatureResult, reference_time: datetime) -> SignatureResult:
    """A pass whose x= lies before `reference_time` (the message's time) becomes a fail."""
    if result.result != PASS or result.expires_at is None or result.expires_at >= reference_time:
        return result
    return dataclasses.replace(
        result,
        result=FAIL,
        reason=f"signature expired: x={result.expires_at.isoformat()} is before the message "
        f"time {reference_time.isoformat()}",
    )


def _check_times(sig: Mapping[bytes, bytes]) -> tuple[str | None, datetime | None]:
    """Syntax of t=/x= and x >= t; expiry itself is judged against the message time."""
    values: dict[bytes, int] = {}
    for tag in (b"t", b"x"):
        if tag in sig:
            if not re.fullmatch(rb"\d{1,12}", sig[tag]):
                return f"{tag.decode()}= is not a decimal timestamp", None
            values[tag] = int(sig[tag])
    if b"t" in values and b"x" in values and values[b"x"] < values[b"t"]:
        return f"x= ({values[b'x']}) is before t= ({values[b't']})", None
    expires = datetime.fromtimestamp(values[b"x"], UTC) if b"x" in values else None
    return None, expires


def _verify_with_key(
    message: dkim.DKIM,
    sig: dict[bytes, bytes],
    header: tuple[bytes, bytes],
    record: KeyRecord,
    *,
    min_key_bits: int,
) -> tuple[str, str | None, int | None]:
    info = parse_key_record(record.record_text)
    if info.problem:
        return PERMERROR, f"unusable key record {record.name}: {info.problem}", info.bits
    if info.key_type == "rsa" and (info.bits or 0) < min_key_bits:
        return (
            PERMERROR,
            f"RSA key {record.name} is {info.bits} bits (minimum {min_key_bits})",
            info.bits,
        )
    record_bytes = record.record_text.encode("ascii")

    def dnsfunc(_name: bytes, timeout: float = 5) -> bytes:
        return record_bytes

    include_headers = [h.lower() for h in re.split(rb"\s*:\s*", sig[b"h"].strip())]
    try:
        ok = message.verify_sig(sig, include_headers, header, dnsfunc)
    except dkim.ValidationError as exc:
        if "body hash mismatch" in str(exc):
            return FAIL, BODY_HASH_MISMATCH, info.bits
        return PERMERROR, f"invalid DKIM-Signature: {_exception_text(exc)}", info.bits
    except dkim.DKIMException as exc:
        return PERMERROR, f"{exc.__class__.__name__}: {_exception_text(exc)}", info.bits
    if ok:
        return PASS, None, info.bits
    return (
        FAIL,
        "signature does not verify: a signed header changed after signing, "
        "or the message was signed with a different key",
        info.bits,
    )


def sign_message(
    raw: bytes,
    *,
    selector: str,
    domain: str,
    private_key_pem: bytes,
    timestamp: int,
    expires: int | None = None,
    headers: Sequence[str] | None = None,
) -> bytes:
    """`raw` with a DKIM-Signature prepended, deterministic for a fixed `timestamp`.

    dkimpy's `sign()` stamps t= from the wall clock and cannot set x=; we build the tag
    list ourselves and let dkimpy's `gen_header` hash and sign it (RSA PKCS#1 v1.5 is
    deterministic). Used by the sample generator, the benchmark and tests.
    """
    linesep = b"\r\n" if b"\r\n" in raw[:2000] else b"\n"
    signer = dkim.DKIM(raw, logger=_DKIMPY_LOGGER, linesep=linesep)
    signer.hasher = dkim.HASH_ALGORITHMS[b"rsa-sha256"]
    policy = dkim.CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
    include = (
        tuple(h.encode().lower() for h in headers)
        if headers
        else tuple(h.lower() for h in signer.default_sign_headers())
    )
    body_hash = base64.b64encode(signer.hasher(policy.canonicalize_body(signer.body)).digest())
    fields = [
        (b"v", b"1"),
        (b"a", b"rsa-sha256"),
        (b"c", b"relaxed/relaxed"),
        (b"d", domain.encode()),
        (b"i", b"@" + domain.encode()),
        (b"q", b"dns/txt"),
        (b"s", selector.encode()),
        (b"t", str(timestamp).encode()),
    ]
    if expires is not None:
        fields.append((b"x", str(expires).encode()))
    fields += [(b"h", b" : ".join(include)), (b"bh", body_hash), (b"b", b"0" * 60)]
    pk = dkim.parse_pem_private_key(private_key_pem)
    value: bytes = signer.gen_header(fields, include, policy, b"DKIM-Signature", pk)
    return b"DKIM-Signature: " + value + raw
