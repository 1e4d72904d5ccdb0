"""DKIM key records: what a selector's TXT record says, where it came from, and the lookups
that find it — from DNS (`DnsKeyLookup`, its TXT resolver injectable so tests never touch
the network) or pinned in advance (`PinnedKeyLookup`: a keys file, or records captured
earlier in the store). Every record keeps its text, time and source, so a verification can
be repeated offline after the key has rotated.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from dkim.crypto import UnparsableKeyError, parse_public_key
from dkim.util import InvalidTagValueList, parse_tag_value

from auditkit.errors import ConfigError, SourceError

SOURCE_DNS = "dns"
SOURCE_KEYS_FILE = "keys-file"
SOURCE_STORE = "store"


def key_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"


def key_record_id(selector: str, domain: str, record_text: str | None) -> str:
    """Stable id of one observed key record: the same text under the same name is one row."""
    # Same digest as auditkit.store.sha256_hex; not imported so that verification worker
    # processes do not load DuckDB and Arrow.
    data = f"{selector.lower()}|{domain.lower()}|{record_text or ''}".encode()
    return hashlib.sha256(data).hexdigest()


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
