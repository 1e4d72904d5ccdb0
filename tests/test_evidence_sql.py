"""The shared evidence SQL: a recipient's pack and the controls read an address the same way."""

import duckdb
import pytest

from auditkit.evidence_sql import addressed_to_sql, bare_address, recipient_address_sql

RENDERINGS = [
    "bob@example.com",
    "BOB@Example.com",
    "  bob@example.com ",
    "Bob <bob@example.com>",
    "Bob < bob@example.com >",
    '"Smith, Bob" <BOB@EXAMPLE.COM>',
    "<bob@example.com>",
]
OTHERS = ["bobby@example.com", "Bob <bob@example.com.evil>", "alice@example.com", ""]


@pytest.mark.parametrize("value", RENDERINGS + OTHERS)
def test_pack_selection_agrees_with_the_controls_address_rule(value: str) -> None:
    con = duckdb.connect()
    controls_address, selected_as_to, selected_as_cc = con.execute(
        f"""SELECT {recipient_address_sql("$v")},
                   {addressed_to_sql("[$v]", "NULL", "'bob@example.com'")},
                   {addressed_to_sql("NULL", "[$v]", "'bob@example.com'")}""",
        {"v": value},
    ).fetchone()
    expected = value in RENDERINGS
    assert (controls_address == "bob@example.com") is expected
    assert selected_as_to is expected and selected_as_cc is expected


@pytest.mark.parametrize("value", RENDERINGS + OTHERS + ["Bob <>", "a <b@c> <d@e>", "<a@b"])
def test_an_address_a_user_gives_is_read_by_the_same_rule(value: str) -> None:
    """`evidence --recipient` reduces the address typed (or pasted: "Bob <bob@…>") in
    Python by the rule the stored To/Cc values are reduced by in SQL."""
    con = duckdb.connect()
    (in_sql,) = con.execute(f"SELECT {recipient_address_sql('$v')}", {"v": value}).fetchall()
    assert bare_address(value) == in_sql[0]
