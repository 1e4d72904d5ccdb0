"""DKIM checks on archived sent mail: key records, key lookups and per-signature verification.

Pure logic, no store and no files except `load_keys_file`. Key lookups are injected: a
`KeyLookup` turns (selector, domain) into candidate `KeyRecord`s, from DNS (`DnsKeyLookup`,
whose TXT resolver is itself injectable so tests never touch the network) or from pinned
records (`PinnedKeyLookup`: a keys file, or records captured earlier in the store). The
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
import binascii
import dataclasses
import functools
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import dkim
from dkim.crypto import UnparsableKeyError, parse_public_key
from dkim.util import InvalidTagValueList, parse_tag_value

from auditkit.errors import ConfigError, SourceError, one_line

logger = logging.getLogger(__name__)
# dkimpy logs key and signature detail at error level for conditions we report as results.
_DKIMPY_LOGGER = logging.getLogger(__name__ + ".dkimpy")

MIN_KEY_BITS = 1024
SOURCE_DNS = "dns"
SOURCE_KEYS_FILE = "keys-file"
SOURCE_STORE = "store"

PASS, FAIL, NONE, TEMPERROR, PERMERROR = "pass", "fail", "none", "temperror", "permerror"
BODY_HASH_MISMATCH = "body hash mismatch: the body changed after signing"


def key_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"


def key_record_id(selector: str, domain: str, record_text: str | None) -> str:
    """Stable id of one observed key record: the same text under the same name is one row."""
    # Same digest as auditkit.store.sha256_hex; not imported so that verification worker
    # processes do not load DuckDB and Arrow.
    data = f"{selector.lower()}|{domain.lower()}|{record_text or ''}".encode()
    return hashlib.sha256(data).hexdigest()


def _exception_text(exc: BaseException) -> str:
    """A parser's complaint as one short line: it may quote the message's raw bytes, and
    it ends up in the store, the pack and the terminal."""
    return one_line(str(exc), 200)


@dataclass(frozen=True)
class KeyRecord:
    """One TXT key record as observed: where, when and from whom."""

    selector: str
    domain: str
    record_text: str
    fetched_at: datetime
    resolver: str | None
    source: str  # dns | keys-file | store

    @property
    def id(self) -> str:
        return key_record_id(self.selector, self.domain, self.record_text)

    @property
    def name(self) -> str:
        return key_name(self.selector, self.domain)

    def to_row(self) -> dict[str, Any]:
        """Row for `dkim_key_records` (records re-read from the store keep their origin)."""
        return {
            "id": self.id,
            "selector": self.selector,
            "domain": self.domain,
            "record_text": self.record_text,
            "fetched_at": self.fetched_at,
            "resolver": self.resolver,
            "source": self.source,
        }


@dataclass(frozen=True)
class KeyInfo:
    """What a key record says about its key; `problem` is set when it cannot be used."""

    key_type: str | None
    bits: int | None
    revoked: bool = False
    problem: str | None = None


@functools.lru_cache(maxsize=256)  # one archive uses a handful of keys across many messages
def parse_key_record(text: str) -> KeyInfo:
    """Key type and size of a DKIM TXT record (RFC 6376 §3.6.1), without raising."""
    try:
        tags = parse_tag_value(text.strip().encode("ascii"))
    except (InvalidTagValueList, UnicodeEncodeError) as exc:
        return KeyInfo(None, None, problem=f"key record is not a tag list: {exc}")
    version = tags.get(b"v")
    if version is not None and version != b"DKIM1":
        return KeyInfo(
            None,
            None,
            problem=f"key record version is {version.decode(errors='replace')!r}, not DKIM1",
        )
    key_type = tags.get(b"k", b"rsa").decode("ascii", "replace").lower()
    if b"p" not in tags:
        return KeyInfo(key_type, None, problem="key record has no p= tag")
    p = re.sub(rb"\s+", b"", tags[b"p"])
    if not p:
        return KeyInfo(key_type, None, revoked=True, problem="key revoked (empty p=)")
    try:
        der = base64.b64decode(p, validate=True)
    except (binascii.Error, ValueError):
        return KeyInfo(key_type, None, problem="p= is not valid base64")
    if key_type == "rsa":
        try:
            key = parse_public_key(der)
        except (UnparsableKeyError, IndexError, ValueError, TypeError) as exc:
            return KeyInfo(key_type, None, problem=f"p= is not an RSA public key: {exc}")
        return KeyInfo(key_type, int(key["modulus"]).bit_length())
    if key_type == "ed25519":
        if len(der) != 32:
            return KeyInfo(key_type, None, problem="ed25519 key is not 32 bytes")
        return KeyInfo(key_type, 256)
    return KeyInfo(key_type, None, problem=f"unknown key type k={key_type}")


class KeyLookup(Protocol):
    """(selector, domain) → candidate key records, best first; [] when there is none.

    Raises SourceError when the lookup failed temporarily (DNS timeout, no nameserver):
    that becomes a `temperror` result, never a pass or a fail.
    """

    def __call__(self, selector: str, domain: str) -> list[KeyRecord]: ...


# qname → the TXT strings at that name (one string per record, its parts joined), or None
# when the name does not exist or has no TXT. Raises SourceError for temporary failures.
TxtResolver = Callable[[str], Sequence[str] | None]


def dnspython_txt_resolver(timeout: float = 5.0) -> tuple[TxtResolver, str]:
    """The production TXT resolver (system resolver config) and a label naming its servers."""
    import dns.exception
    import dns.resolver

    try:
        resolver = dns.resolver.Resolver()
    except dns.resolver.NoResolverConfiguration as exc:
        raise SourceError(
            f"no DNS resolver configured ({exc}); use --keys to verify offline"
        ) from exc
    label = ",".join(str(ns) for ns in resolver.nameservers) or "system"

    def resolve(qname: str) -> list[str] | None:
        try:
            answer = resolver.resolve(qname, "TXT", lifetime=timeout)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except (
            dns.exception.Timeout,
            dns.resolver.NoNameservers,
            dns.resolver.NoResolverConfiguration,
        ) as exc:
            raise SourceError(
                f"DNS lookup of {qname} TXT failed: {exc.__class__.__name__}"
            ) from exc
        return [b"".join(rdata.strings).decode("ascii", "replace") for rdata in answer]

    return resolve, label


class DnsKeyLookup:
    """Key records from DNS, one query per name per run (cached), each capture timestamped."""

    def __init__(
        self,
        txt_resolver: TxtResolver | None = None,
        resolver_label: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if txt_resolver is None:
            txt_resolver, default_label = dnspython_txt_resolver()
            resolver_label = resolver_label or default_label
        self._resolve = txt_resolver
        self.resolver_label = resolver_label or "injected"
        self._clock = clock
        self._cache: dict[tuple[str, str], list[KeyRecord]] = {}

    def __call__(self, selector: str, domain: str) -> list[KeyRecord]:
        cache_key = (selector.lower(), domain.lower())
        if cache_key not in self._cache:
            texts = self._resolve(key_name(selector, domain)) or []
            fetched_at = self._clock()
            # Several TXT records can share the name (e.g. a stray SPF-like string): only
            # those carrying a key are candidates, in the order the resolver gave them.
            self._cache[cache_key] = [
                KeyRecord(selector, domain, text, fetched_at, self.resolver_label, SOURCE_DNS)
                for text in texts
                if "p=" in text
            ]
        return self._cache[cache_key]


class PinnedKeyLookup:
    """Key records known in advance (keys file, or captured in the store): no DNS at all.

    A name may carry several records (a captured history across rotations); each is tried
    and the first that verifies wins. Picklable, so worker processes can use it.
    """

    def __init__(self, records: Iterable[KeyRecord]) -> None:
        self.records: dict[tuple[str, str], list[KeyRecord]] = {}
        for rec in records:
            bucket = self.records.setdefault((rec.selector.lower(), rec.domain.lower()), [])
            if all(r.record_text != rec.record_text for r in bucket):
                bucket.append(rec)

    def __call__(self, selector: str, domain: str) -> list[KeyRecord]:
        return list(self.records.get((selector.lower(), domain.lower()), []))

    def __len__(self) -> int:
        return sum(len(v) for v in self.records.values())


_NAME_RE = re.compile(
    r"^(?P<selector>[^.\s]+(?:\.[^.\s]+)*?)\._domainkey\.(?P<domain>[^\s]+?)\.?$", re.IGNORECASE
)


def _unquote_zone_text(text: str) -> str:
    """`"v=DKIM1; k=rsa; " "p=MIIB..."` (zone-file style) → the joined record text."""
    text = text.strip()
    if text.startswith('"'):
        parts = re.findall(r'"((?:[^"\\]|\\.)*)"', text)
        return "".join(p.replace('\\"', '"').replace("\\\\", "\\") for p in parts)
    return text


def load_keys_file(
    path: Path, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> PinnedKeyLookup:
    """Read pinned key records for offline verification.

    Two formats, chosen by the first non-blank character:

    * text: one key per line, `selector._domainkey.domain TXT-record-text`; the record
      text may be bare (`v=DKIM1; k=rsa; p=MIIB…`) or zone-file quoted strings; `#` starts
      a comment line. A name listed twice with different text is a ConfigError.
    * JSON (`[` or `{`): an export of `dkim_key_records`, as an array or one object per
      line, e.g. `COPY dkim_key_records TO 'keys.json' (FORMAT JSON, ARRAY true)`. Needs
      `selector`, `domain`, `record_text`; keeps `fetched_at`/`resolver` when present.
      Several records per name are allowed (history across rotations).
    """
    try:
        content = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"keys file {path} cannot be read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"keys file {path} is not UTF-8 text") from exc
    loaded_at = clock()
    label = f"keys-file:{path}"
    stripped = content.lstrip()
    if stripped.startswith(("[", "{")):
        return PinnedKeyLookup(_records_from_json(path, stripped, loaded_at, label))

    records: dict[tuple[str, str], KeyRecord] = {}
    for lineno, line in enumerate(content.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, text = line.partition(" ")
        match = _NAME_RE.match(name)
        record_text = _unquote_zone_text(text)
        if not match or not record_text:
            raise ConfigError(
                f"{path}:{lineno}: expected `selector._domainkey.domain TXT-record-text`, "
                f"got {line[:80]!r}"
            )
        selector, domain = match["selector"], match["domain"].lower()
        key = (selector.lower(), domain)
        if key in records and records[key].record_text != record_text:
            raise ConfigError(
                f"{path}:{lineno}: {key_name(selector, domain)} is listed twice with different keys"
            )
        records[key] = KeyRecord(selector, domain, record_text, loaded_at, label, SOURCE_KEYS_FILE)
    return PinnedKeyLookup(records.values())


def _records_from_json(path: Path, text: str, loaded_at: datetime, label: str) -> list[KeyRecord]:
    try:
        if text.startswith("["):
            items = json.loads(text)
        else:
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise ConfigError(f"keys file {path} is not valid JSON: {exc}") from exc
    records = []
    for n, item in enumerate(items, start=1):
        if not isinstance(item, Mapping) or not all(
            isinstance(item.get(k), str) for k in ("selector", "domain", "record_text")
        ):
            raise ConfigError(
                f"keys file {path}: entry {n} needs string selector, domain and record_text"
            )
        fetched_at = loaded_at
        if isinstance(item.get("fetched_at"), str):
            try:
                fetched_at = datetime.fromisoformat(item["fetched_at"].replace("Z", "+00:00"))
            except ValueError:
                pass
        if fetched_at.tzinfo is None:
            fetched_at = fetched_at.replace(tzinfo=UTC)
        records.append(
            KeyRecord(
                item["selector"],
                item["domain"].lower(),
                item["record_text"],
                fetched_at,
                item.get("resolver") or label,
                SOURCE_KEYS_FILE,
            )
        )
    # Newest capture first: after a rotation the current key is the likelier match.
    records.sort(key=lambda r: r.fetched_at, reverse=True)
    return records


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
