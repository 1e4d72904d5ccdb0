"""The shared evidence SQL: a recipient's pack and the controls read an address the same way."""

import duckdb
import pytest

from auditkit.evidence_sql import addressed_to_sql, recipient_address_sql

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
