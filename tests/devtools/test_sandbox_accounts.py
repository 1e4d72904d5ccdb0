"""The sandbox serves several accounts from one address, told apart by API key (issue 15)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from auditkit.config import Settings
from auditkit.devtools.sample.generator import generate
from auditkit.devtools.sandbox import SandboxServer
from auditkit.errors import ConfigError

FIRST_KEY, SECOND_KEY = "mm_test_first_0001", "mm_test_second_0002"


@pytest.fixture(scope="module")
def second_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("second") / "data"
    generate(out, messages=50, seed=7)
    return out


def _get(server: SandboxServer, path: str, token: str) -> httpx.Response:
    return httpx.get(
        f"{server.base_url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def test_each_key_reads_its_own_accounts_data(sample_data: Path, second_data: Path) -> None:
    with SandboxServer(
        sample_data, api_key=FIRST_KEY, more_accounts={SECOND_KEY: second_data}
    ) as server:
        first = _get(server, "/v1/mailboxes", FIRST_KEY).json()["mailboxes"]
        second = _get(server, "/v1/mailboxes", SECOND_KEY).json()["mailboxes"]
        assert {m["id"] for m in first}.isdisjoint({m["id"] for m in second})
        assert _get(server, "/v1/mailboxes", "mm_test_nobody").status_code == 401
        # Intercom by token: each account's settings carry the tokens of its own dataset.
        aimed = server.aim(Settings(), api_key=SECOND_KEY)
        assert aimed.multimail_api_key == SECOND_KEY
        assert aimed.intercom_access_token != server.intercom_token
        me = _get(server, "/me", aimed.intercom_access_token or "")
        assert me.status_code == 200
        # Tampering applies to the account named, once.
        assert server.apply_mutations(SECOND_KEY) > 0
        assert server.apply_mutations() > 0
        assert server.accounts[SECOND_KEY].audit_removed
        with pytest.raises(ConfigError, match="no account with that API key"):
            server.apply_mutations("mm_test_nobody")


def test_every_account_needs_its_own_key(sample_data: Path, second_data: Path) -> None:
    with pytest.raises(ConfigError, match="API key of its own"):
        SandboxServer(sample_data, api_key=FIRST_KEY, more_accounts={FIRST_KEY: second_data})
