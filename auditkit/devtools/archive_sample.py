"""Seeded generator of the sample sent-mail archive: DKIM-signed copies of delivered emails.

`python -m auditkit.archive_sample --out sample_data/archive` reads the sample quarter's
`multimail/emails.jsonl`, picks ~20 delivered outbound northwind.example messages
(random.Random(42)), and writes them as .eml files, one small mbox and one Maildir folder,
signed with the committed throw-away test key (selector mm2026). Planted cases, listed in
`expected.json`: body tampered after signing, a Subject changed after signing, signed by
the wrong key, content changed before signing (valid DKIM, body differs from the approved
markdown), no identity headers, an expired signature, and a copy matched only by
recipients + subject + time. Signatures use a fixed t= so output is byte-identical.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import dkim.crypto

from auditkit.devtools import bundled_sample_data
from auditkit.dkim import sign_message
from auditkit.store import canonical_json

SEED = 42
SELECTOR = "mm2026"
DOMAIN = "northwind.example"
DNS_DIR = bundled_sample_data() / "dns"
TEST_KEY = DNS_DIR / "test-dkim-private.pem"
WRONG_TEST_KEY = DNS_DIR / "test-dkim-wrong-private.pem"
# SMTP line endings, but long header tokens (the identity claim) stay one unencoded token.
_POLICY = SMTP.clone(max_line_length=998)
SIGNED_HEADERS = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "x-multimail-id",
    "x-multimail-identity",
    "x-multimail-agent",
)


# -- key record text from a private key (no `cryptography` dependency) --------------------


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + body


def _der_int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def public_key_record(private_key_pem: bytes) -> str:
    """`v=DKIM1; k=rsa; p=<SubjectPublicKeyInfo, base64>` for a PEM RSA private key."""
    key = dkim.crypto.parse_pem_private_key(private_key_pem)
    rsa_public = _der(0x30, _der_int(key["modulus"]) + _der_int(key["publicExponent"]))
    rsa_oid = _der(0x06, bytes.fromhex("2a864886f70d010101"))
    spki = _der(0x30, _der(0x30, rsa_oid + _der(0x05, b"")) + _der(0x03, b"\x00" + rsa_public))
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(spki).decode("ascii")


def keys_file_line(private_key_pem: bytes, selector: str = SELECTOR, domain: str = DOMAIN) -> str:
    return f"{selector}._domainkey.{domain} {public_key_record(private_key_pem)}"


# -- messages ------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def identity_header(email_id: str, agent: str | None, iat: int) -> str:
    """An opaque stand-in for MultiMail's signed identity claim (payload.signature)."""
    claim = canonical_json(
        {
            "ai_generated": True,
            "agent": agent,
            "iat": iat,
            "operator": "Northwind Supply Co.",
            "service": "multimail",
        }
    ).encode()
    return _b64url(claim) + "." + _b64url(hashlib.sha256(claim + email_id.encode()).digest())


def _ts(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


@dataclass(frozen=True)
class SourceEmail:
    id: str
    from_address: str
    to: tuple[str, ...]
    subject: str
    markdown: str
    delivered_at: datetime
    agent: str | None


def load_source_emails(path: Path) -> list[SourceEmail]:
    """Delivered outbound emails sent from northwind.example mailboxes."""
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            rec = json.loads(line)
            sender = str(rec.get("from") or "")
            delivered = _ts(rec.get("delivered_at"))
            if rec.get("direction", "outbound") != "outbound" or delivered is None:
                continue
            if not sender.lower().endswith("@" + DOMAIN) or not rec.get("to"):
                continue
            to = rec["to"] if isinstance(rec["to"], list) else [rec["to"]]
            out.append(
                SourceEmail(
                    rec["id"],
                    sender,
                    tuple(to),
                    rec.get("subject") or "",
                    rec.get("markdown") or rec.get("body_markdown") or "",
                    delivered,
                    (rec.get("tags") or {}).get("agent"),
                )
            )
    return sorted(out, key=lambda e: e.id)


def synthetic_source_emails(count: int = 20) -> list[SourceEmail]:
    """Stand-in emails for when the sample quarter is absent (say so wherever used)."""
    rng = random.Random(SEED)
    start = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
    out = []
    for n in range(count):
        sent = start + timedelta(hours=rng.randint(0, 24 * 90), minutes=rng.randint(0, 59))
        out.append(
            SourceEmail(
                f"em_syn{n:04d}",
                "support@northwind.example",
                (f"customer{n}@example.com",),
                f"Your order NW-{1000 + n}",
                f"Hello,\n\nYour order NW-{1000 + n} has shipped.\n\nNorthwind Supply Co.\n",
                sent,
                "support-agent",
            )
        )
    return out


def build_message(
    e: SourceEmail,
    *,
    body: str | None = None,
    with_identity: bool = True,
    with_multimail_id: bool = True,
    message_id: str | None = None,
) -> bytes:
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = e.from_address
    msg["To"] = ", ".join(e.to)
    msg["Subject"] = e.subject
    msg["Date"] = format_datetime(e.delivered_at - timedelta(seconds=5))
    msg["Message-ID"] = message_id or f"<{e.id}@mail.multimail.dev>"
    if with_multimail_id:
        msg["X-MultiMail-Id"] = e.id
    if with_identity:
        msg["X-MultiMail-Identity"] = identity_header(
            e.id, e.agent, int(e.delivered_at.timestamp()) - 5
        )
        if e.agent:
            msg["X-MultiMail-Agent"] = e.agent
    msg.set_content(
        body if body is not None else e.markdown, charset="utf-8", cte="quoted-printable"
    )
    return msg.as_bytes()


def sign(
    raw: bytes,
    key_pem: bytes,
    e: SourceEmail,
    *,
    expires_after: int | None = None,
    signed_offset: int = 5,
) -> bytes:
    t = int(e.delivered_at.timestamp()) - signed_offset
    header_block = raw.split(b"\r\n\r\n", 1)[0].lower()
    present = [h for h in SIGNED_HEADERS if re.search(rb"(?m)^" + h.encode() + rb":", header_block)]
    return sign_message(
        raw,
        selector=SELECTOR,
        domain=DOMAIN,
        private_key_pem=key_pem,
        timestamp=t,
        expires=None if expires_after is None else t + expires_after,
        headers=present,
    )


def _to_lf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")


# -- the archive -----------------------------------------------------------------------------


def generate(
    out: Path,
    emails: Sequence[SourceEmail],
    *,
    key_pem: bytes,
    wrong_key_pem: bytes,
    source_label: str,
    count: int = 20,
) -> dict[str, Any]:
    """Write the archive under `out` (replacing it) and return the expected results."""
    rng = random.Random(SEED)
    chosen = sorted(rng.sample(list(emails), min(count, len(emails))), key=lambda e: e.id)
    if len(chosen) < 9:
        raise SystemExit(f"need at least 9 delivered outbound {DOMAIN} emails, found {len(chosen)}")
    if out.exists():
        shutil.rmtree(out)
    (out / "eml").mkdir(parents=True)
    expected: list[dict[str, Any]] = []

    def record(
        e: SourceEmail,
        case: str,
        where: str,
        dkim_result: str,
        reason: str | None = None,
        body_matches: bool | None = True,
        match_method: str = "header",
        identity: bool = True,
    ) -> None:
        expected.append(
            {
                "email_id": e.id,
                "case": case,
                "source": where,
                "dkim_result": dkim_result,
                "reason_contains": reason,
                "body_matches_approved": body_matches,
                "match_method": match_method,
                "has_identity_header": identity,
            }
        )

    messages: list[tuple[SourceEmail, bytes, str]] = []  # (email, raw with CRLF, case)
    for n, e in enumerate(chosen):
        if n == 0:  # body tampered after signing: DKIM body hash fails (ID-001, ID-002)
            raw = sign(build_message(e), key_pem, e)
            head, _, body = raw.partition(b"\r\n\r\n")
            raw = head + b"\r\n\r\n" + body + b"P.S. Reply with your card number to confirm.\r\n"
            record(
                e,
                "body_tampered_after_signing",
                "",
                "fail",
                "body hash mismatch",
                body_matches=False,
            )
        elif n == 1:  # signed by a key that is not the published one (ID-001)
            raw = sign(build_message(e), wrong_key_pem, e)
            record(e, "wrong_key", "", "fail", "signature does not verify")
        elif (
            n == 2
        ):  # content changed before signing: DKIM passes, body differs from approval (ID-002)
            changed = (
                e.markdown.rstrip()
                + "\n\nLimited offer: reply today for 40% off your next order.\n"
            )
            raw = sign(build_message(e, body=changed), key_pem, e)
            record(e, "content_changed_before_signing", "", "pass", None, body_matches=False)
        elif n == 3:  # no identity headers (ID-003)
            raw = sign(build_message(e, with_identity=False), key_pem, e)
            record(e, "no_identity_headers", "", "pass", None, identity=False)
        elif n == 4:  # x= ten minutes after t=, delivered an hour after signing: expired (ID-001)
            raw = sign(build_message(e), key_pem, e, expires_after=600, signed_offset=3600)
            record(e, "expired_signature", "", "fail", "signature expired")
        elif n == 5:  # Subject changed after signing: header hash fails (ID-001)
            raw = sign(build_message(e), key_pem, e)
            raw = raw.replace(b"\r\nSubject: ", b"\r\nSubject: URGENT: ", 1)
            record(e, "subject_tampered_after_signing", "", "fail", "signature does not verify")
        elif n == 6:  # no MultiMail id anywhere: matched by recipients + subject + time
            raw = sign(
                build_message(
                    e,
                    with_multimail_id=False,
                    message_id=f"<{_b64url(hashlib.sha256(e.id.encode()).digest()[:12])}@pm.example>",
                ),
                key_pem,
                e,
            )
            record(e, "heuristic_match", "", "pass", None, match_method="heuristic")
        else:
            raw = sign(build_message(e), key_pem, e)
            record(e, "clean", "", "pass", None)
        messages.append((e, raw, expected[-1]["case"]))

    # Last three go to the mbox, the three before to the Maildir, the rest to .eml files.
    eml, maildir, mbox = messages[:-6], messages[-6:-3], messages[-3:]
    for (e, raw, _), exp in zip(eml, expected, strict=False):
        path = out / "eml" / f"{e.id}.eml"
        path.write_bytes(raw)
        exp["source"] = f"eml/{e.id}.eml"
    by_id = {exp["email_id"]: exp for exp in expected}
    for sub in ("cur", "new", "tmp"):
        (out / "Maildir" / sub).mkdir(parents=True)
    (out / "Maildir" / "tmp" / ".keep").write_bytes(b"")  # git keeps no empty folders
    for n, (e, raw, _) in enumerate(maildir):
        sub, name = (
            ("new", f"{1780000000 + n}.M{n}P1.archive")
            if n == 0
            else ("cur", f"{1780000000 + n}.M{n}P1.archive:2,S")
        )
        (out / "Maildir" / sub / name).write_bytes(_to_lf(raw))
        by_id[e.id]["source"] = f"Maildir#{name.split(':')[0]}"
    with (out / "journal.mbox").open("wb") as fh:
        for n, (e, raw, _) in enumerate(mbox):
            lf = _to_lf(raw)
            if b"\nFrom " in lf:  # mboxo would have to quote it, breaking the body hash
                raise SystemExit(
                    f"{e.id}: body has a line starting with 'From '; pick another seed"
                )
            stamp = (e.delivered_at).strftime("%a %b %d %H:%M:%S %Y")
            fh.write(
                f"From {e.from_address} {stamp}\n".encode()
                + lf
                + (b"" if lf.endswith(b"\n") else b"\n")
                + b"\n"
            )
            by_id[e.id]["source"] = f"journal.mbox#{n}"

    document = {
        "generated_by": "python -m auditkit.archive_sample",
        "seed": SEED,
        "source_emails": source_label,
        "selector": SELECTOR,
        "domain": DOMAIN,
        "keys_file": "sample_data/dns/keys.txt",
        "expiry_rule": "x= is compared with the matched email's delivered_at "
        "(else the Date header)",
        "messages": sorted(expected, key=lambda x: x["email_id"]),
    }
    (out / "expected.json").write_text(
        json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return document


def write_keys_file(dns_dir: Path, key_pem: bytes) -> Path:
    path = dns_dir / "keys.txt"
    path.write_text(
        "# Pinned DKIM key records for offline verification (auditkit harvest-archive --keys).\n"
        "# Format: one key per line, `selector._domainkey.domain TXT-record-text`.\n"
        "# Public half of test-dkim-private.pem, a throw-away TEST key: "
        "never use it for real mail.\n" + keys_file_line(key_pem) + "\n",
        encoding="utf-8",
    )
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m auditkit.archive_sample", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=Path("sample_data/archive"))
    parser.add_argument("--emails", type=Path, default=Path("sample_data/multimail/emails.jsonl"))
    parser.add_argument(
        "--dns-dir",
        type=Path,
        default=DNS_DIR,
        help="folder with test-dkim-private.pem; keys.txt is written there",
    )
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="use 20 synthetic emails instead of the sample quarter (when it is absent)",
    )
    args = parser.parse_args(argv)
    key_pem = (args.dns_dir / TEST_KEY.name).read_bytes()
    wrong_key_pem = (args.dns_dir / WRONG_TEST_KEY.name).read_bytes()
    if args.synthetic:
        emails, label = (
            synthetic_source_emails(),
            "synthetic (auditkit.archive_sample.synthetic_source_emails)",
        )
    else:
        if not args.emails.is_file():
            print(
                f"{args.emails} not found; generate the sample quarter first or pass --synthetic",
                file=sys.stderr,
            )
            return 2
        emails, label = load_source_emails(args.emails), args.emails.as_posix()
    write_keys_file(args.dns_dir, key_pem)
    doc = generate(
        args.out, emails, key_pem=key_pem, wrong_key_pem=wrong_key_pem, source_label=label
    )
    print(f"wrote {len(doc['messages'])} messages to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
