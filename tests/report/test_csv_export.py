"""CSV files of the pack: fixed headers, RFC 4180 quoting, formula neutralisation, order, and
the derived message columns."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from auditkit.report import csv_export, write_pack
from tests.builders import ScratchStore
from tests.report.factory import Q3, demo_store, results, settings


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("csv") / "pack"
    with demo_store() as store:
        write_pack(store, settings(), Q3, out, results=results(), formats=("csv",))
    return out


def read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("messages.csv", csv_export.MESSAGE_FIELDS),
        ("decisions.csv", csv_export.DECISION_FIELDS),
        ("findings.csv", csv_export.FINDING_FIELDS),
        ("audit_log.csv", csv_export.AUDIT_LOG_FIELDS),
    ],
)
def test_header_is_the_fields_constant(pack: Path, name: str, fields: tuple[str, ...]) -> None:
    first_line = (pack / name).read_bytes().split(b"\r\n", 1)[0].decode()
    assert first_line.split(",") == list(fields)


def test_messages_csv_has_every_outbound_message_in_the_period_sorted(pack: Path) -> None:
    rows = read(pack / "messages.csv")
    assert [r["message_id"] for r in rows] == [f"em-0{i}" for i in range(1, 10)]
    assert [r["created_at"] for r in rows] == sorted(r["created_at"] for r in rows)
    assert rows[0]["created_at"] == "2026-08-03T09:00:00Z"  # ISO-8601 UTC


@pytest.mark.parametrize(
    "value", ["=1+1", "+1 offer", "-50% today", "@mention", "\tcancelled", "\rx"]
)
def test_neutralise_prefixes_formula_starts(value: str) -> None:
    assert csv_export.neutralise(value) == "'" + value


@pytest.mark.parametrize("value", ["plain", "", "a=b", None, 5, "'already"])
def test_neutralise_leaves_other_values(value: object) -> None:
    assert csv_export.neutralise(value) == value


def test_formulas_are_neutralised_in_every_csv(pack: Path) -> None:
    messages = {r["message_id"]: r for r in read(pack / "messages.csv")}
    assert messages["em-02"]["subject"] == '\'=HYPERLINK("http://evil")'
    assert messages["em-04"]["subject"] == "'-50% today"
    assert messages["em-05"]["subject"] == "'+1 offer"
    assert messages["em-06"]["subject"] == "'@mention"
    assert messages["em-08"]["subject"] == "'\tcancelled"
    assert messages["em-02"]["decision_note"] == "'=cmd|' /C calc'!A0"
    decisions = {r["audit_id"]: r for r in read(pack / "decisions.csv")}
    assert decisions["al-3"]["reason"] == "'=cmd|' /C calc'!A0"
    findings = {r["finding_id"]: r for r in read(pack / "findings.csv")}
    assert findings["CS-04:email:em-05"]["waiver_justification"] == "'=SUM(1)"
    for name in ("messages.csv", "decisions.csv", "findings.csv", "audit_log.csv"):
        for row in read(pack / name):
            for value in row.values():
                assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), (name, value)


def test_rfc4180_quoting_of_commas_quotes_and_newlines(pack: Path) -> None:
    data = (pack / "messages.csv").read_bytes()
    assert data.endswith(b"\r\n")
    assert b'"Bob, Jr. <bob@example.com>"' in data
    assert b'"He said ""hi"", then\nleft"' in data  # embedded newline kept inside quotes
    rows = {r["message_id"]: r for r in read(pack / "messages.csv")}
    assert rows["em-03"]["subject"] == 'He said "hi", then\nleft'
    assert rows["em-03"]["to"] == "Bob, Jr. <bob@example.com>"
    lines = data.split(b"\r\n")
    assert all(b"\r" not in line for line in lines)


def test_derived_message_columns(pack: Path) -> None:
    rows = {r["message_id"]: r for r in read(pack / "messages.csv")}
    assert {k: rows[k]["decision"] for k in rows} == {
        "em-01": "approved",
        "em-02": "rejected",
        "em-03": "approved",
        "em-04": "none",
        "em-05": "none",
        "em-06": "pending",
        "em-07": "approved",
        "em-08": "cancelled",
        "em-09": "approved",
    }
    # mb-2 went gated_send → autonomous on 2026-08-10 (audit entry al-4)
    assert (rows["em-04"]["oversight_mode_at_send"], rows["em-04"]["oversight_mode_source"]) == (
        "gated_send",
        "audit_log",
    )
    assert (rows["em-05"]["oversight_mode_at_send"], rows["em-05"]["oversight_mode_source"]) == (
        "autonomous",
        "audit_log",
    )
    assert (rows["em-01"]["oversight_mode_at_send"], rows["em-01"]["oversight_mode_source"]) == (
        "gated_send",
        "current_mailbox",
    )
    assert (rows["em-04"]["dkim_status"], rows["em-04"]["dkim_source"]) == ("fail", "domain")
    assert (rows["em-05"]["dkim_status"], rows["em-05"]["dkim_source"]) == ("pass", "message")
    assert rows["em-01"]["intercom_resolved_by"] == "ai_agent"
    assert (
        rows["em-01"]["intercom_conversation_url"]
        == "https://app.intercom.com/a/inbox/abc123de/inbox/conversation/conv-1"
    )
    assert rows["em-03"]["intercom_resolved_by"] == "not_found"
    assert rows["em-04"]["intercom_resolved_by"] == "not_verified"
    assert rows["em-02"]["intercom_resolved_by"] == "not_linked"
    assert rows["em-01"]["decided_by"] == "reviewer@northwind.test"
    assert rows["em-01"]["sent_by_key_id"] == "key-agent"
    assert rows["em-04"]["finding_ids"] == "OV-001:email:em-04"
    assert rows["em-01"]["finding_ids"] == ""


def test_decisions_and_audit_log(pack: Path) -> None:
    decisions = read(pack / "decisions.csv")
    assert [(d["audit_id"], d["decision"], d["email_id"]) for d in decisions] == [
        ("al-2", "approved", "em-01"),
        ("al-3", "rejected", "em-02"),
        ("al-5", "cancelled", "em-08"),
    ]
    assert decisions[0]["email_sent_by_key_id"] == "key-agent"
    audit = read(pack / "audit_log.csv")
    assert [a["chain_seq"] for a in audit] == ["1", "2", "3", "4", "5"]
    assert audit[3]["metadata"] == '{"changed_by":"ops","from":"gated_send","to":"autonomous"}'


def test_findings_csv_keeps_full_evidence(pack: Path) -> None:
    findings = read(pack / "findings.csv")
    assert [f["finding_id"] for f in findings] == sorted(f["finding_id"] for f in findings)
    long = next(f for f in findings if f["finding_id"] == "OV-001:email:em-07")
    assert len(long["evidence"]) > 3000


def test_copy_keeps_the_query_order_across_threads(tmp_path: Path) -> None:
    """DuckDB writes CSV in parallel; the ledgers rely on it keeping the query's order."""
    with ScratchStore() as store:
        store.con.execute("SET threads = 4")
        store.con.execute(
            "CREATE TEMP TABLE t AS SELECT (i * 7919) % 300007 AS k FROM range(300007) r(i)"
        )
        sql = "SELECT lpad(CAST(k AS VARCHAR), 6, '0') AS v FROM t ORDER BY k DESC"
        n = csv_export.write_query_csv(store, tmp_path / "o.csv", ("v",), sql, {})
    lines = (tmp_path / "o.csv").read_bytes().decode("utf-8").split("\r\n")
    assert n == 300_007 and lines[0] == "v" and lines[-1] == ""
    assert lines[1:-1] == [f"{k:06d}" for k in range(300_006, -1, -1)]


def test_csv_files_are_byte_identical_across_runs(tmp_path: Path, pack: Path) -> None:
    with demo_store() as store:
        write_pack(store, settings(), Q3, tmp_path / "again", results=results(), formats=("csv",))
    for name in ("messages.csv", "decisions.csv", "findings.csv", "audit_log.csv", "manifest.json"):
        assert (tmp_path / "again" / name).read_bytes() == (pack / name).read_bytes(), name


def test_csv_writer_round_trips_arbitrary_text(tmp_path: Path) -> None:
    text = 'a,b\r\n"c"\n=d'
    csv_export.write_rows_csv(tmp_path / "x.csv", ("v",), [{"v": text}])
    data = (tmp_path / "x.csv").read_bytes().decode("utf-8")
    assert list(csv.reader(io.StringIO(data, newline="")))[1] == [text]
