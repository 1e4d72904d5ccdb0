"""`auditkit import`: saved read_email records (JSON array, one JSON object, or JSONL; either
shape) loaded into `multimail_emails`, one transaction per file."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from auditkit.config import Settings
from auditkit.errors import ConfigError
from auditkit.harvest.recorder import HarvestResult, json_safe, logger, new_run_id
from auditkit.normalise import RecordError, normalise_email
from auditkit.store import Quarantined, Store, canonical_json
from auditkit.store.harvest_state import first_harvested_at

SOURCE = "import"  # the quarantine's source for records refused here


def read_records_file(path: Path) -> Iterable[tuple[str, Any | None, str | None]]:
    """(location, record, error) per record of a JSON array, a JSON object (one record) or a
    JSONL file of read_email records. A UTF-8 byte-order mark is skipped (Windows tools
    write one); a file that is not UTF-8 text is refused with ConfigError."""
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise ConfigError(f"{path} is a binary file, not JSON or JSONL records")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 JSON or JSONL"
        ) from exc
    stripped = text.lstrip()
    if stripped.startswith("{"):
        # One pretty-printed record; a one-line record per line is JSONL, handled below.
        try:
            record = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            pass
        else:
            yield f"{path}", record, None
            return
    if stripped.startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            yield f"{path}", text, f"not valid JSON: {exc.msg} at line {exc.lineno}"
            return
        except RecursionError:  # Python's parser gives up on deep nesting ([[[[…]]]])
            yield f"{path}", text, "JSON nested too deeply to read"
            return
        for i, record in enumerate(records):
            yield f"{path}[{i}]", record, None
        return
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield f"{path}:{lineno}", json.loads(line), None
        except json.JSONDecodeError as exc:
            yield f"{path}:{lineno}", line, f"line {lineno} is not valid JSON: {exc.msg}"
        except RecursionError:
            yield f"{path}:{lineno}", line, f"line {lineno} is JSON nested too deeply to read"


def import_emails(settings: Settings, store: Store, paths: Sequence[Path]) -> HarvestResult:
    """Load saved read_email records (either shape) into `multimail_emails`, a file per transaction.

    Records without a direction are taken as outbound (read_email exports are of sent
    mail). Bad records are quarantined under source `import` and counted.
    """
    run_id = new_run_id()
    store.start_run(run_id, "import", json_safe({"files": [str(p) for p in paths]}))
    started = time.perf_counter()
    result = HarvestResult(run_id=run_id)
    now = datetime.now(UTC)
    try:
        for path in paths:
            rows: list[dict[str, Any]] = []
            bad: list[tuple[str, str, str]] = []
            for location, record, error in read_records_file(path):
                if error is None:
                    try:
                        row = normalise_email(
                            record, conversation_key=settings.intercom_conversation_tag
                        )
                    except RecordError as exc:
                        error = str(exc)
                if error is not None:
                    raw_text = record if isinstance(record, str) else canonical_json(record)
                    bad.append((location, error, raw_text))
                    continue
                row["direction"] = row["direction"] or "outbound"
                rows.append(row)
            first_seen = first_harvested_at(store, [r["id"] for r in rows])
            for row in rows:
                row["first_harvested_at"] = first_seen.get(row["id"], now)
                row["run_id"], row["harvested_at"] = run_id, now
            for location, reason, _ in bad:
                logger.warning("quarantined %s: %s", location, reason)
            store.commit_batch(
                "multimail_emails",
                rows,
                quarantine=[
                    Quarantined(run_id, SOURCE, str(path), reason, raw_text)
                    for _, reason, raw_text in bad
                ],
            )
            result.counts["emails_imported"] = result.counts.get("emails_imported", 0) + len(rows)
            result.quarantined += len(bad)
    except OSError as exc:
        result.outcome = "failed"
        store.finish_run(
            run_id, "failed", result.to_dict(), error=f"{exc.filename}: {exc.strerror}"
        )
        raise ConfigError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    result.outcome = "ok"
    result.duration = time.perf_counter() - started
    store.finish_run(run_id, "ok", result.to_dict())
    return result
