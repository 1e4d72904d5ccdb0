"""Differential test: the ledgers DuckDB's COPY writes (`csv_export.write_query_csv`) are
byte-identical to what the earlier Python writer wrote, on adversarial content and on the
harvested sample quarter.

The earlier writer is kept here, and only here, as the oracle: DuckDB encoded each row as
one RFC 4180 line in SQL (the csv module's QUOTE_MINIMAL rule), Python wrote the header with
the csv module and then the lines from Arrow batches. `test_oracle_matches_the_csv_module`
ties the oracle itself to the csv module, so COPY = oracle = csv module.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as settings_h
from hypothesis import strategies as st

from auditkit.config import Settings
from auditkit.findings import ControlResult, Period
from auditkit.report import csv_export, write_pack
from auditkit.report.messages import bind
from auditkit.store import Store
from tests.builders import ScratchStore
from tests.report.factory import Q3, at, audit, demo_store, email, results, settings

LEDGERS = ("messages.csv", "decisions.csv", "audit_log.csv")


# -- the oracle: the writer csv_export used before COPY, verbatim --------------------------
def _oracle_field_sql(expr: str) -> str:
    return (
        f"CASE WHEN {expr} IS NULL THEN '' "
        f"""WHEN regexp_matches({expr}, '[",\\r\\n]') """
        f"""THEN '"' || replace({expr}, '"', '""') || '"' """
        f"ELSE {expr} END"
    )


def oracle_line_sql(select_sql: str, fields: Sequence[str]) -> str:
    parts = " || ',' || ".join(_oracle_field_sql(f'q."{f}"') for f in fields)
    return f"SELECT {parts} || chr(13) || chr(10) AS line FROM ({select_sql}) q"


def oracle_write_query_csv(
    store: Store, path: Path, fields: Sequence[str], sql: str, params: Mapping[str, Any]
) -> int:
    line_sql = oracle_line_sql(sql, fields)
    rows = 0
    with open(path, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\r\n").writerow(fields)
        for batch in store.con.sql(line_sql, params=bind(line_sql, params)).to_arrow_reader(2):
            fh.write("".join(batch.column(0).to_pylist()))
            rows += batch.num_rows
    return rows


# -- adversarial content -------------------------------------------------------------------
HOSTILE = [
    "=SUM(A1:A9)",
    "+1 555 0100",
    "-50% today",
    "@SUM(1)",
    "\tleading tab",
    "\rleading CR",
    "\r\nleading CRLF",
    "a,b,c",
    'say "hi"',
    '"',
    '""',
    ",",
    "line one\nline two",
    "line one\r\nline two",
    "cr\ronly",
    "tab\tinside",
    "#not a comment",
    "'already quoted",
    " leading and trailing spaces ",
    "ünïcödé — 中文 — 🙂",
    "\u2028line separator\u2029",
    "NULL",
    "\\N",
    "a; b; c",
    "0042",
    "1.5e10",
    "2026-07-01T00:00:00Z",
    "x" * 70_000,
    '=HYPERLINK("http://evil.example","click, here")',
]


def _hostile(i: int) -> str:
    return HOSTILE[i % len(HOSTILE)]


def add_hostile_rows(store: Store) -> list[str]:
    """Emails and audit entries whose every text column is hostile, with NULLs and empty
    strings, list elements of both, and timestamps with and without microseconds."""
    emails, entries, ids = [], [], []
    seq = 100
    for i in range(len(HOSTILE) + 3):
        message_id = f"hx-{i:02d}" if i % 4 else f'=hx-{i:02d},"id"'
        ids.append(message_id)
        created = at(4 + i % 20, 8, i % 60) + timedelta(microseconds=(i % 3) * 1234)
        empty_or_null = None if i % 2 else ""
        emails.append(
            email(
                message_id,
                created,
                mailbox_id=_hostile(i + 1) if i % 5 == 0 else "mb-1",
                from_address=_hostile(i + 2),
                to=[_hostile(i), "", "plain@example.com", _hostile(i + 3)][: 1 + i % 4],
                cc_addresses=None if i % 3 else [_hostile(i + 4), ""],
                subject=_hostile(i) if i != 7 else "",
                status=("sent", "delivered", "rejected", "pending_send_approval", "")[i % 5],
                approved_by=[_hostile(i + 5), None, "", "reviewer@northwind.test"][i % 4],
                approved_at=created + timedelta(minutes=3, microseconds=i) if i % 2 else None,
                delivered_at=created + timedelta(minutes=9) if i % 3 == 0 else None,
                bounced_at=created + timedelta(hours=1) if i % 7 == 0 else None,
                bounce_type=_hostile(i + 6) if i % 7 == 0 else empty_or_null,
                decision_note=_hostile(i + 7) if i % 2 else empty_or_null,
                agent=_hostile(i + 8) if i % 3 else empty_or_null,
                conversation_id=_hostile(i + 9) if i % 4 == 1 else None,
                dkim_verified=(True, False, None)[i % 3],
            )
        )
        actions = ("email.sent", "oversight.approved", "oversight.rejected", "email.cancelled")
        for k, action in enumerate(actions[: 1 + i % 4]):
            seq += 1
            entries.append(
                audit(
                    f"hx-al-{seq}" if seq % 6 else f"+hx-al-{seq}",
                    seq,
                    action,
                    message_id,
                    created + timedelta(minutes=k, microseconds=(seq % 2) * 7),
                    {
                        "reviewer": _hostile(seq),
                        "reason": _hostile(seq + 1) if seq % 3 else "",
                        "mailbox_id": "mb-1",
                        "note": _hostile(seq + 2),
                    },
                    actor=[_hostile(seq + 3), None, "key-agent", ""][seq % 4],
                )
            )
        seq += 1
        entries.append(
            audit(
                f"hx-odd-{seq}",
                seq,
                _hostile(seq),
                _hostile(seq + 1),
                created + timedelta(hours=2),
                {"weird": _hostile(seq + 2)},
                resource_type=_hostile(seq + 3),
                actor=None,
            )
        )
    store.upsert("multimail_emails", emails)
    store.upsert("multimail_audit_log", entries)
    return ids


@pytest.fixture
def hostile_store() -> Iterator[tuple[Store, list[str]]]:
    store = demo_store()
    try:
        ids = add_hostile_rows(store)
        yield store, ids
    finally:
        store.close()


def _packs(
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    the_settings: Settings,
    period: Period,
    the_results: Sequence[ControlResult],
    **scope: Any,
) -> tuple[Path, Path]:
    copied = tmp_path / "copy"
    write_pack(store, the_settings, period, copied, results=the_results, formats=("csv",), **scope)
    with monkeypatch.context() as m:
        m.setattr(csv_export, "write_query_csv", oracle_write_query_csv)
        oracle = tmp_path / "oracle"
        write_pack(
            store, the_settings, period, oracle, results=the_results, formats=("csv",), **scope
        )
    return copied, oracle


def _assert_identical(copied: Path, oracle: Path, *, min_rows: int) -> None:
    for name in LEDGERS:
        new, old = (copied / name).read_bytes(), (oracle / name).read_bytes()
        assert new == old, f"{name}: first difference at byte " + str(
            next((i for i, (a, b) in enumerate(zip(new, old, strict=False)) if a != b), None)
        )
    rows = list(csv.reader(io.StringIO((copied / "messages.csv").read_text("utf-8"), newline="")))
    assert len(rows) - 1 >= min_rows


def test_period_pack_ledgers_equal_the_oracle(
    hostile_store: tuple[Store, list[str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    store, ids = hostile_store
    copied, oracle = _packs(store, monkeypatch, tmp_path, settings(), Q3, results())
    _assert_identical(copied, oracle, min_rows=len(ids))
    text = (copied / "messages.csv").read_text("utf-8")
    # The content really is hostile: quoted newlines, doubled quotes, neutralised formulas.
    assert '"line one\nline two"' in text and 'say ""hi""' in text and "'=SUM(A1:A9)" in text
    assert "x" * 70_000 in text


@pytest.mark.parametrize("kind", ["messages", "recipient"])
def test_evidence_pack_ledgers_equal_the_oracle(
    hostile_store: tuple[Store, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    kind: str,
) -> None:
    store, ids = hostile_store
    scope: dict[str, Any] = (
        {"message_ids": ids[:6]} if kind == "messages" else {"recipient": "plain@example.com"}
    )
    copied, oracle = _packs(store, monkeypatch, tmp_path, settings(), Q3, results(), **scope)
    _assert_identical(copied, oracle, min_rows=2)


@settings_h(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(
            st.one_of(
                st.none(),
                st.sampled_from(HOSTILE[:-2]),
                st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00")),
            ),
            min_size=3,
            max_size=3,
        ),
        min_size=0,
        max_size=8,
    )
)
def test_copy_equals_the_oracle_on_arbitrary_text(rows: list[list[str | None]]) -> None:
    import tempfile

    fields = ("a", "b", "c")
    with ScratchStore() as store, tempfile.TemporaryDirectory() as tmp:
        store.con.execute("CREATE TEMP TABLE t (n INTEGER, a VARCHAR, b VARCHAR, c VARCHAR)")
        if rows:
            store.con.executemany(
                "INSERT INTO t VALUES (?, ?, ?, ?)", [[i, *r] for i, r in enumerate(rows)]
            )
        safe = ", ".join(f'{csv_export._sql_safe(f)} AS "{f}"' for f in fields)
        sql = f"SELECT {safe} FROM t ORDER BY n"
        new, old = Path(tmp) / "new.csv", Path(tmp) / "old.csv"
        assert csv_export.write_query_csv(store, new, fields, sql, {}) == len(rows)
        assert oracle_write_query_csv(store, old, fields, sql, {}) == len(rows)
        assert new.read_bytes() == old.read_bytes()


@settings_h(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(
            st.one_of(
                st.none(), st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"))
            ),
            min_size=3,
            max_size=3,
        ),
        min_size=1,
        max_size=8,
    )
)
def test_oracle_matches_the_csv_module(rows: list[list[str | None]]) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute("CREATE TABLE t (n INTEGER, a VARCHAR, b VARCHAR, c VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", [[i, *r] for i, r in enumerate(rows)])
    produced = "".join(
        r[0]
        for r in con.execute(oracle_line_sql("SELECT a, b, c FROM t ORDER BY n", "abc")).fetchall()
    )
    expected = io.StringIO(newline="")
    csv.writer(expected, lineterminator="\r\n").writerows(
        [["" if v is None else v for v in r] for r in rows]
    )
    assert produced == expected.getvalue()


def test_a_non_text_column_is_refused(tmp_path: Path) -> None:
    from auditkit.errors import ReportError

    with ScratchStore() as store, pytest.raises(ReportError, match="not text"):
        csv_export.write_query_csv(store, tmp_path / "x.csv", ("n",), "SELECT 1 AS n", {})


def test_a_path_with_a_quote_is_written(tmp_path: Path) -> None:
    with ScratchStore() as store:
        path = tmp_path / "it's $start.csv"
        assert csv_export.write_query_csv(store, path, ("v",), "SELECT 'x' AS v", {}) == 1
        assert path.read_bytes() == b"v\r\nx\r\n"


# -- the harvested sample quarter ------------------------------------------------------------
@pytest.mark.slow
def test_sample_quarter_ledgers_equal_the_oracle(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, harvested_sample_quarter: Path
) -> None:
    from auditkit.controls import run_controls
    from auditkit.findings import parse_period
    from tests.conftest import sample_quarter_store

    db, the_settings = sample_quarter_store(harvested_sample_quarter, tmp_path)
    period = parse_period("2026Q3")
    with Store(db, read_only=True) as store:
        the_results = run_controls(store, the_settings, period)
        copied, oracle = _packs(store, monkeypatch, tmp_path, the_settings, period, the_results)
        _assert_identical(copied, oracle, min_rows=1000)
        first = store.query(
            "SELECT id FROM multimail_emails WHERE direction = 'outbound' ORDER BY id LIMIT 1"
        )[0][0]
        (tmp_path / "one").mkdir()
        copied, oracle = _packs(
            store,
            monkeypatch,
            tmp_path / "one",
            the_settings,
            period,
            the_results,
            message_ids=[first],
        )
        _assert_identical(copied, oracle, min_rows=1)
