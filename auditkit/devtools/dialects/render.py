"""A whole dataset folder rendered in a dialect: the audit log and emails rewritten in
order, mutations of entries a dialect lacks dropped, the DKIM archive re-signed."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from auditkit.devtools import bundled_sample_data
from auditkit.devtools.dialects.axes import Dialect, get_dialect
from auditkit.devtools.dialects.rewrite import (
    APPROVED,
    decoy_entries,
    oversight_key_id,
    render_email,
    render_entry,
)
from auditkit.errors import ConfigError

# The logger name dialect rendering has always logged under.
logger = logging.getLogger("auditkit.sample_dialects")


def dumps(record: Any) -> str:
    """The sample's JSONL form: sorted keys, no whitespace, UTF-8 as is."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def write_json(path: Path, value: Any) -> None:
    """The sample's JSON-file form (indent 2, sorted keys, trailing newline)."""
    path.write_text(
        json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing: not a dataset written by auditkit.sample") from None


# -- the whole folder ---------------------------------------------------------------------------
def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        yield from fh


def render(src: Path | None, dest: Path, dialect: str | Dialect) -> dict[str, Any]:
    """Copy the dataset folder `src` (None: the bundled sample_data/) to `dest` (new or empty)
    and rewrite it in `dialect`. Returns counts of what was rewritten, dropped and inserted."""
    d = get_dialect(dialect)
    src = Path(src) if src is not None else bundled_sample_data()
    dest = Path(dest)
    mm_src = src / "multimail"
    if not (mm_src / "emails.jsonl").is_file() or not (mm_src / "audit_log.jsonl").is_file():
        raise ConfigError(
            f"no sample data in {src}; generate it with `python -m auditkit.sample --out {src}`"
        )
    oversight_key = oversight_key_id(read_json(mm_src / "api_keys.json"))
    mailboxes = read_json(mm_src / "mailboxes.json").get("mailboxes", [])
    mutations_path = mm_src / "mutations.json"
    mutations = read_json(mutations_path) if mutations_path.is_file() else None
    archive_expected = src / "archive" / "expected.json"
    archived_ids = (
        {str(m["email_id"]) for m in read_json(archive_expected).get("messages", [])}
        if archive_expected.is_file()
        else set()
    )
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConfigError(f"{dest} exists and is not an empty folder; render into a new one")
    if dest.resolve().is_relative_to(src.resolve()):
        raise ConfigError(f"{dest} is inside the source dataset {src}; render elsewhere")
    # Written into a hidden sibling and renamed into place: no half-rendered `dest`.
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.rendering-", dir=dest.parent))
    try:
        shutil.copytree(src, work, dirs_exist_ok=True)
        summary = _render_into(src, work, d, oversight_key, mailboxes, mutations, archived_ids)
        if dest.exists():
            dest.rmdir()
        work.rename(dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    logger.info("rendered %s as %s into %s: %s", src, d.name, dest, summary)
    return summary


def _render_into(
    src: Path,
    dest: Path,
    d: Dialect,
    oversight_key: str,
    mailboxes: list[dict[str, Any]],
    mutations: dict[str, Any] | None,
    archived_ids: set[str],
) -> dict[str, Any]:
    """Rewrite the copy `dest` of `src` in dialect `d` (see render)."""
    mm_src, mm = src / "multimail", dest / "multimail"
    targets = {
        str(m.get("id")): m for m in (mutations or {}).get("mutations", []) if isinstance(m, dict)
    }
    summary: dict[str, Any] = {"dialect": d.name}

    # 1. Audit log, oldest first. Decisions by a key other than the oversight key are noted
    # for approved_by; the latest approval of an email wins.
    key_approvers: dict[str, str] = {}
    decoys = decoy_entries(mailboxes) if d.vocabulary == "mailbox_update" else []
    dropped_targets: set[str] = set()
    counts = dict.fromkeys(("written", "rewritten", "dropped", "inserted"), 0)
    with (mm / "audit_log.jsonl").open("wb") as out_fh:

        def emit_decoys(before: tuple[str, str] | None) -> None:
            """Write the decoys older than `before` (all of them for None)."""
            while decoys and (
                before is None or (decoys[0]["created_at"], decoys[0]["id"]) < before
            ):
                out_fh.write((dumps(decoys.pop(0)) + "\n").encode())
                counts["inserted"] += 1
                counts["written"] += 1

        for raw in _lines(mm_src / "audit_log.jsonl"):
            if raw.isspace():
                out_fh.write(raw)
                continue
            entry = json.loads(raw)
            entry_id = str(entry.get("id"))
            emit_decoys((str(entry.get("created_at")), entry_id))
            if entry.get("action") == APPROVED and entry.get("resource_type") == "email":
                email_id, actor = str(entry.get("resource_id")), entry.get("actor_key_id")
                if actor != oversight_key and actor is not None:
                    key_approvers[email_id] = str(actor)
                else:
                    key_approvers.pop(email_id, None)
            rendered = render_entry(entry, d, oversight_key)
            if rendered is None:
                counts["dropped"] += 1
                if entry_id in targets:
                    dropped_targets.add(entry_id)
                continue
            if entry_id in targets and not _mutation_applies(targets[entry_id], entry, rendered):
                dropped_targets.add(entry_id)
            counts["written"] += 1
            if rendered == entry:
                out_fh.write(raw)
            else:
                counts["rewritten"] += 1
                out_fh.write((dumps(rendered) + "\n").encode())
        emit_decoys(None)
    summary.update(
        audit_entries=counts["written"],
        audit_rewritten=counts["rewritten"],
        audit_dropped=counts["dropped"],
        audit_inserted=counts["inserted"],
    )

    # 2. Emails, in their order; inbound mail is copied as is.
    email_counts = dict.fromkeys(("emails", "rewritten", "approved_by", "bodies", "tags"), 0)
    changed_archived: set[str] = set()
    with (mm / "emails.jsonl").open("wb") as out_fh:
        for raw in _lines(mm_src / "emails.jsonl"):
            if raw.isspace():
                out_fh.write(raw)
                continue
            rec = json.loads(raw)
            email_counts["emails"] += 1
            rendered = render_email(rec, d, oversight_key, key_approvers)
            if rendered == rec:
                out_fh.write(raw)
                continue
            email_counts["rewritten"] += 1
            for field, count in (
                ("approved_by", "approved_by"),
                ("markdown", "bodies"),
                ("tags", "tags"),
            ):
                if rendered.get(field) != rec.get(field):
                    email_counts[count] += 1
            if rendered.get("markdown") != rec.get("markdown") and rec.get("id") in archived_ids:
                changed_archived.add(str(rec["id"]))
            out_fh.write((dumps(rendered) + "\n").encode())
    summary.update(
        emails=email_counts["emails"],
        emails_rewritten=email_counts["rewritten"],
        approved_by_rewritten=email_counts["approved_by"],
        bodies_rewritten=email_counts["bodies"],
        tags_rewritten=email_counts["tags"],
    )

    # 3. Mutations of entries this dialect does not have (or whose field it drops) go too.
    summary["mutations_dropped"] = 0
    if mutations is not None and dropped_targets:
        listed = mutations.get("mutations", [])
        kept = [m for m in listed if str(m.get("id")) not in dropped_targets]
        summary["mutations_dropped"] = len(listed) - len(kept)
        note = (
            f" Dialect {d.name}: {summary['mutations_dropped']} mutation(s) of audit entries "
            "this dialect does not write were removed."
        )
        description = str(mutations.get("description", "")) + note
        write_json(
            mm / "mutations.json", {**mutations, "description": description, "mutations": kept}
        )

    # 4. The DKIM-signed archive copies the approved bodies: re-sign the ones that changed.
    summary["archive_resigned"] = 0
    if changed_archived:
        summary["archive_resigned"] = _resign_archive(src, dest)

    # 5. MultiMail's own counts name their event types in the account's words too.
    summary["population_renamed"] = _rename_population_events(mm, d.vocabulary)

    if d.name != "canonical" and (dest / "README.md").is_file():
        readme = dest / "README.md"
        readme.write_text(
            f"> Rendered in dialect `{d.name}` by `python -m auditkit.sample_dialects` "
            f"(vocabulary {d.vocabulary}, approver {d.approver}, opt_out {d.opt_out}, "
            f"postal {d.postal}, type_tags {d.type_tags}). The text below describes the "
            "canonical rendering; the facts are the same.\n\n" + readme.read_text(encoding="utf-8"),
            encoding="utf-8",
        )
    return summary


# Usage and webhook event types per audit vocabulary (the canonical names elsewhere).
USAGE_EVENT_NAMES = {
    "decide": {
        "emails_sent": "email.sent",
        "emails_received": "email.received",
        "oversight_actions": "oversight.decide",
    },
    "past_tense": {
        "emails_sent": "sent",
        "emails_received": "received",
        "oversight_actions": "decided",
        "api_calls": "requests",
    },
}
WEBHOOK_EVENT_NAMES = {
    "past_tense": {
        "message.sent": "email.sent",
        "message.delivered": "email.delivered",
        "message.bounced": "email.bounced",
        "message.complained": "email.complained",
    },
}


def _rename_population_events(mm: Path, vocabulary: str) -> int:
    """Rename usage event types, and webhook event types in both the deliveries and the
    subscriptions that list them; the counts stay. Returns the records rewritten."""
    renamed = 0
    usage_names = USAGE_EVENT_NAMES.get(vocabulary, {})
    usage_path = mm / "usage_daily.json"
    if usage_names and usage_path.is_file():
        usage = read_json(usage_path)
        for item in usage["data"]:
            item["event_type"] = usage_names.get(item["event_type"], item["event_type"])
        usage["data"].sort(key=lambda i: (i["date"], i["event_type"]))
        write_json(usage_path, usage)
        renamed += len(usage["data"])
    hook_names = WEBHOOK_EVENT_NAMES.get(vocabulary, {})
    deliveries_path = mm / "webhook_deliveries.jsonl"
    if hook_names and deliveries_path.is_file():
        subscriptions = read_json(mm / "webhooks.json")
        for sub in subscriptions["subscriptions"]:
            sub["events"] = [hook_names.get(e, e) for e in sub["events"]]
        write_json(mm / "webhooks.json", subscriptions)
        lines = []
        for raw in _lines(deliveries_path):
            record = json.loads(raw)
            record["event_type"] = hook_names.get(record["event_type"], record["event_type"])
            lines.append(dumps(record))
        deliveries_path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        renamed += len(lines)
    return renamed


def _mutation_applies(
    mutation: dict[str, Any], source: dict[str, Any], rendered: dict[str, Any]
) -> bool:
    """False when a `set` mutation targets a field the source entry has and the rendering
    dropped (it would add a field instead of changing one)."""
    if mutation.get("op") != "set":
        return True
    path = list(mutation.get("path") or [])

    def has(record: Any) -> bool:
        for key in path:
            if not isinstance(record, dict) or key not in record:
                return False
            record = record[key]
        return True

    return has(rendered) or not has(source)


def _resign_archive(src: Path, dest: Path) -> int:
    """Regenerate dest/archive from the rendered emails with the dataset's own test keys.
    The archive picks messages by id and delivery only, so its cases must come out the same."""
    from auditkit.devtools import archive_sample

    expected_src = src / "archive" / "expected.json"
    label = read_json(expected_src).get("source_emails", "multimail/emails.jsonl")
    dns = dest / "dns"
    key, wrong_key = dns / archive_sample.TEST_KEY.name, dns / archive_sample.WRONG_TEST_KEY.name
    if not key.is_file() or not wrong_key.is_file():
        raise ConfigError(f"{dns} lacks the test DKIM keys needed to re-sign the archive")
    document = archive_sample.generate(
        dest / "archive",
        archive_sample.load_source_emails(dest / "multimail" / "emails.jsonl"),
        key_pem=key.read_bytes(),
        wrong_key_pem=wrong_key.read_bytes(),
        source_label=label,
    )
    if (dest / "archive" / "expected.json").read_bytes() != expected_src.read_bytes():
        raise ConfigError(
            "re-signing the archive from the rendered emails changed its planted cases"
        )
    return len(document["messages"])


@contextmanager
def rendered(dialect: str | Dialect, src: Path | None = None) -> Iterator[Path]:
    """A temporary folder holding `src` (default: the bundled sample) rendered in `dialect`,
    removed on exit."""
    d = get_dialect(dialect)
    with tempfile.TemporaryDirectory(prefix=f"auditkit-{d.name}-") as tmp:
        target = Path(tmp) / "data"
        render(src, target, d)
        yield target
