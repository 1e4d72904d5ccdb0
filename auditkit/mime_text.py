"""What a raw sent message (RFC 5322 bytes) shows its reader: its decoded text parts.

The archive reads the text/plain part to compare it with the approved draft; CS-001 and
CS-002 read every inline text part, plain and HTML, of an archived as-sent copy, since a
footer that the provider or a template adds at send time (an unsubscribe link, a postal
address) is in what was sent and not in the stored draft. Parsing uses compat32: raw
header strings, and about a third of the cost of the modern policy's header objects.
"""

from __future__ import annotations

import email.policy
from collections.abc import Iterator
from email.message import Message
from email.parser import BytesParser

PARSER = BytesParser(policy=email.policy.compat32)
TEXT_TYPES = ("text/plain", "text/html")


def decoded_text(part: Message) -> str | None:
    """A part's payload, transfer-decoded and charset-decoded (bad bytes replaced); None
    for a multipart container."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return None
    charset = part.get_content_charset() or "us-ascii"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # unknown charset name
        return payload.decode("utf-8", errors="replace")


def inline_text_parts(msg: Message, types: tuple[str, ...] = TEXT_TYPES) -> Iterator[str]:
    """Every inline part of one of `types`, in message order, decoded as it is reached (a
    reader of the first decodes no other)."""
    for part in msg.walk():
        if part.get_content_type() in types and part.get_content_disposition() != "attachment":
            text = decoded_text(part)
            if text is not None:
                yield text


def displayed_text(raw: bytes) -> str:
    """Every inline text/plain and text/html part of `raw`, decoded, one after another."""
    return "\n".join(inline_text_parts(PARSER.parsebytes(raw)))
