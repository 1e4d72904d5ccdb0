"""API records → row dicts shaped like the store's tables; fetches nothing, stores nothing.

`normalise_email` accepts both `read_email` shapes (the real `/v1` record and the flat
integration-guide record) and yields one row model. Fields we do not map stay in `raw`
(canonical JSON) whose SHA-256 is the record's identity for tamper checks. Unusable records
raise `RecordError` with a one-line reason; the harvester quarantines them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from auditkit.config import DEFAULT_CONVERSATION_TAG
from auditkit.multimail_terms import FINAL_STATUSES, GUIDE_FINAL_STATUSES
from auditkit.store import canonical_json, sha256_hex

# Keys only the integration-guide shape uses; any of them marks a record as guide-shaped.
GUIDE_MARKERS = ("decision", "metadata", "message_id", "dkim_verified", "body", "decided_at")
_DIGITS = re.compile(r"^-?\d+(\.\d+)?$")
# Epoch values above this are milliseconds (1e11 s is the year 5138).
_EPOCH_MS_THRESHOLD = 100_000_000_000


class RecordError(ValueError):
    """A record that cannot become a row; the message is the one-line reason."""


def provenance(record: Any) -> dict[str, str]:
    raw = canonical_json(record)
    try:
        digest = sha256_hex(raw)
    except UnicodeEncodeError as exc:
        # JSON may legally escape a lone surrogate (\\ud800); it has no UTF-8 form, so the
        # record cannot be stored or hashed faithfully: quarantine it with the reason.
        raise RecordError("record contains invalid Unicode (a lone surrogate escape)") from exc
    return {"raw": raw, "raw_sha256": digest}


def parse_timestamp(value: Any, field: str) -> datetime | None:
    """ISO-8601 string or epoch seconds/milliseconds (number or digit string) → aware UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RecordError(f"{field} is a boolean, not a timestamp")
    if isinstance(value, str) and _DIGITS.match(value.strip()):
        value = float(value)
    if isinstance(value, (int, float)):
        seconds = value / 1000 if abs(value) >= _EPOCH_MS_THRESHOLD else value
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise RecordError(f"{field} epoch value {value!r} is out of range") from exc
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise RecordError(f"{field} {value!r} is not an ISO-8601 timestamp") from exc
        if parsed.tzinfo is None:  # the API documents UTC; a bare time means UTC
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    raise RecordError(f"{field} is {type(value).__name__}, not a timestamp")


def _require_object(raw: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise RecordError(f"{what} record is {type(raw).__name__}, not a JSON object")
    return raw


def _id(raw: Mapping[str, Any], *keys: str) -> str:
    for key in keys:
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise RecordError(f"{key} is {type(value).__name__} {value!r}, not a non-empty string")
        return value
    raise RecordError(f"record has no {' or '.join(keys)}")


def _str(raw: Mapping[str, Any], key: str, value: Any = ...) -> str | None:
    value = raw.get(key) if value is ... else value
    if value is None:
        return None
    if isinstance(value, (dict, list, bool)):
        raise RecordError(f"{key} is {type(value).__name__}, not a string")
    return str(value)


def _str_list(value: Any, key: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise RecordError(f"{key} is {type(value).__name__}, not a string or list of strings")


def _bool(value: Any, key: str) -> bool | None:
    """true/false, or the 0/1 integers MultiMail uses for SQLite-style booleans."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise RecordError(f"{key} is {value!r}, not a boolean")


# The store's INTEGER columns (spam_score) hold 32 bits: a larger value must be refused
# here, one record quarantined, not fail the Arrow build of the whole batch it is in.
_INT32 = range(-(2**31), 2**31)


def _int(value: Any, key: str) -> int | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)  # json.loads accepts Infinity and NaN; int() raises on them
        or int(value) != value
    ):
        raise RecordError(f"{key} is {value!r}, not an integer")
    if int(value) not in _INT32:
        raise RecordError(f"{key} is {value!r}, outside the 32-bit integer range")
    return int(value)


def _object(value: Any, key: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise RecordError(f"{key} is {type(value).__name__}, not an object")
    return value


def _json_or_none(value: Any) -> str | None:
    return None if value is None else canonical_json(value)


def is_guide_shape(raw: Mapping[str, Any]) -> bool:
    return any(k in raw for k in GUIDE_MARKERS) or isinstance(raw.get("to"), str)


def normalise_email(
    raw: Any,
    *,
    mailbox_id: str | None = None,
    direction: str | None = None,
    conversation_key: str = DEFAULT_CONVERSATION_TAG,
) -> dict[str, Any]:
    """One `multimail_emails` row (without run_id / harvested_at / first_harvested_at).

    `mailbox_id` and `direction` come from the list call and path, because the detail
    response lacks them; values inside the record win only when the caller has none.
    """
    record = _require_object(raw, "email")
    guide = is_guide_shape(record)
    email_id = _id(record, "id", "message_id") if guide else _id(record, "id")
    tags = _object(record.get("tags"), "tags")
    metadata = _object(record.get("metadata"), "metadata")
    attachments = record.get("attachments")
    if attachments is not None and not isinstance(attachments, list):
        raise RecordError(f"attachments is {type(attachments).__name__}, not a list")

    status = _str(record, "status")
    delivered_at = parse_timestamp(record.get("delivered_at"), "delivered_at")
    bounced_at = parse_timestamp(record.get("bounced_at"), "bounced_at")
    decision = decision_note = None
    if guide:
        dec = _object(record.get("decision"), "decision") or {}
        approved_by = _str(dec, "reviewer") if dec else _str(record, "approved_by")
        approved_at = parse_timestamp(
            dec.get("decided_at", record.get("decided_at", record.get("approved_at"))), "decided_at"
        )
        decision = _str(dec, "decision", dec.get("decision", dec.get("action")))
        decision_note = _str(dec, "note")
        created_at = parse_timestamp(
            record.get("received_at", record.get("created_at")), "received_at"
        )
        conversation_id = _str(metadata or {}, "conversation_id") or _str(
            tags or {}, conversation_key
        )
        agent = _str(metadata or {}, "agent") or _str(tags or {}, "agent")
        body = record.get("body", record.get("markdown"))
        dkim_verified = _bool(record.get("dkim_verified"), "dkim_verified")
    else:
        approved_by = _str(record, "approved_by")
        approved_at = parse_timestamp(record.get("approved_at"), "approved_at")
        created_at = parse_timestamp(record.get("received_at"), "received_at")
        conversation_id = _str(tags or {}, conversation_key)
        agent = _str(tags or {}, "agent")
        body = record.get("markdown")
        dkim_verified = _bool(record.get("dkim_verified"), "dkim_verified")
    if decision is not None:
        # The guide passes the action verb ("approve") as often as the outcome ("approved").
        decision = {"approve": "approved", "reject": "rejected"}.get(decision, decision)

    is_final = (
        status in FINAL_STATUSES
        or delivered_at is not None
        or bounced_at is not None
        or (guide and status in GUIDE_FINAL_STATUSES)
    )
    has_attachments = _bool(record.get("has_attachments"), "has_attachments")
    if has_attachments is None and attachments is not None:
        has_attachments = bool(attachments)
    return {
        "id": email_id,
        "mailbox_id": mailbox_id or _str(record, "mailbox_id"),
        "direction": direction or _str(record, "direction"),
        "from_address": _str(record, "from"),
        "to_addresses": _str_list(record.get("to"), "to"),
        "cc_addresses": _str_list(record.get("cc"), "cc"),
        "subject": _str(record, "subject"),
        "status": status,
        "created_at": created_at,
        "thread_id": _str(record, "thread_id"),
        "body_markdown": _str(record, "body", body),
        "has_attachments": has_attachments,
        "attachments": _json_or_none(attachments),
        "delivered_at": delivered_at,
        "bounced_at": bounced_at,
        "bounce_type": _str(record, "bounce_type"),
        "approved_at": approved_at,
        "approved_by": approved_by,
        "decision": decision,
        "decision_note": decision_note,
        "dkim_verified": dkim_verified,
        "conversation_id": conversation_id,
        "agent": agent,
        "tags": _json_or_none(tags),
        "metadata": _json_or_none(metadata),
        "spam_score": _int(record.get("spam_score"), "spam_score"),
        "spam_verdict": _str(record, "spam_verdict"),
        "source_shape": "guide" if guide else "v1",
        "is_final": is_final,
        **provenance(record),
    }


def normalise_account(raw: Any) -> dict[str, Any]:
    r = _require_object(raw, "account")
    return {
        "id": _id(r, "id"),
        "name": _str(r, "name"),
        "slug": _str(r, "slug"),
        "plan": _str(r, "plan"),
        "oversight_email": _str(r, "oversight_email"),
        "physical_address": _str(r, "physical_address"),
        "is_active": _bool(r.get("is_active"), "is_active"),
        "sending_disabled": _bool(r.get("sending_disabled"), "sending_disabled"),
        **provenance(r),
    }


def normalise_mailbox(raw: Any) -> dict[str, Any]:
    r = _require_object(raw, "mailbox")
    return {
        "id": _id(r, "id"),
        "address": _str(r, "address"),
        "display_name": _str(r, "display_name"),
        "oversight_mode": _str(r, "oversight_mode"),
        "auto_cc": _str(r, "auto_cc"),
        "auto_bcc": _str(r, "auto_bcc"),
        "signature_block": _str(r, "signature_block"),
        "default_gate_timing": _str(r, "default_gate_timing"),
        "created_at": parse_timestamp(r.get("created_at"), "created_at"),
        "is_active": _bool(r.get("is_active"), "is_active"),
        **provenance(r),
    }


def normalise_api_key(raw: Any) -> dict[str, Any]:
    r = _require_object(raw, "api key")
    return {
        "id": _id(r, "id"),
        "name": _str(r, "name"),
        "prefix": _str(r, "prefix"),
        "scopes": _str_list(r.get("scopes"), "scopes"),
        "created_at": parse_timestamp(r.get("created_at"), "created_at"),
        "last_used_at": parse_timestamp(r.get("last_used_at"), "last_used_at"),
        "is_active": _bool(r.get("is_active"), "is_active"),
        **provenance(r),
    }


def normalise_domain(raw: Any) -> dict[str, Any]:
    r = _require_object(raw, "domain")
    return {
        "id": _id(r, "id"),
        "domain": _str(r, "domain"),
        "status": _str(r, "status"),
        "dkim_verified": _bool(r.get("dkim_verified"), "dkim_verified"),
        "spf_verified": _bool(r.get("spf_verified"), "spf_verified"),
        "mx_verified": _bool(r.get("mx_verified"), "mx_verified"),
        "return_path_verified": _bool(r.get("return_path_verified"), "return_path_verified"),
        "created_at": parse_timestamp(r.get("created_at"), "created_at"),
        "verified_at": parse_timestamp(r.get("verified_at"), "verified_at"),
        **provenance(r),
    }


def normalise_webhook(raw: Any) -> dict[str, Any]:
    """Signing secrets are dropped before `raw` is built: they must never be stored."""
    r = _require_object(raw, "webhook")
    clean = {k: v for k, v in r.items() if k not in ("signing_secret", "secret")}
    return {
        "id": _id(clean, "id"),
        "url": _str(clean, "url"),
        "events": _str_list(clean.get("events"), "events"),
        "mailbox_id": _str(clean, "mailbox_id"),
        "created_at": parse_timestamp(clean.get("created_at"), "created_at"),
        **provenance(clean),
    }


def normalise_usage_day(raw: Any) -> dict[str, Any]:
    """One `UsageDaily.data` item: a UTC day, an event type (the account's own spelling,
    kept as is) and a count."""
    r = _require_object(raw, "usage")
    day = parse_timestamp(r.get("date"), "date")
    if day is None:
        raise RecordError("usage item has no date")
    event_type = _str(r, "event_type")
    if not event_type:
        raise RecordError("usage item has no event_type")
    count = _int(r.get("count"), "count")
    if count is None or count < 0:
        raise RecordError(f"usage count is {r.get('count')!r}, not a count")
    return {
        "id": f"{day.date().isoformat()}|{event_type}",
        "date": day.date(),
        "event_type": event_type,
        "count": count,
        **provenance(r),
    }


def normalise_webhook_delivery(raw: Any) -> dict[str, Any]:
    r = _require_object(raw, "webhook delivery")
    return {
        "id": _id(r, "id"),
        "event_type": _str(r, "event_type"),
        "url": _str(r, "url"),
        "status": _str(r, "status"),
        "attempts": _int(r.get("attempts"), "attempts"),
        "response_status": _int(r.get("response_status"), "response_status"),
        "created_at": parse_timestamp(r.get("created_at"), "created_at"),
        "last_attempt_at": parse_timestamp(r.get("last_attempt_at"), "last_attempt_at"),
        **provenance(r),
    }


def normalise_suppression(raw: Any) -> dict[str, Any]:
    r = _require_object(raw, "suppression")
    return {
        # Older payloads carry no id; the address is then the key (as the DELETE path uses it).
        "id": _id(r, "id", "email_address"),
        "email_address": _str(r, "email_address"),
        "reason": _str(r, "reason"),
        "mailbox_id": _str(r, "mailbox_id"),
        "created_at": parse_timestamp(r.get("created_at"), "created_at"),
        **provenance(r),
    }


def normalise_pending(raw: Any) -> dict[str, Any]:
    r = _require_object(raw, "pending email")
    return {
        "id": _id(r, "id"),
        "mailbox_id": _str(r, "mailbox_id"),
        "direction": _str(r, "direction"),
        "from_address": _str(r, "from"),
        "to_addresses": _str_list(r.get("to"), "to"),
        "subject": _str(r, "subject"),
        "status": _str(r, "status"),
        "created_at": parse_timestamp(r.get("received_at", r.get("created_at")), "received_at"),
        **provenance(r),
    }


def normalise_audit_entry(raw: Any) -> dict[str, Any]:
    """Audit row without chain_seq/chain_hash (the harvester assigns chain positions)."""
    r = _require_object(raw, "audit entry")
    metadata = _object(r.get("metadata"), "metadata")
    created_at = parse_timestamp(r.get("created_at"), "created_at")
    if created_at is None:
        raise RecordError("audit entry has no created_at")
    return {
        "id": _id(r, "id"),
        "action": _str(r, "action"),
        "resource_type": _str(r, "resource_type"),
        "resource_id": _str(r, "resource_id"),
        "actor_key_id": _str(r, "actor_key_id"),
        "metadata": _json_or_none(metadata),
        "created_at": created_at,
        **provenance(r),
    }
