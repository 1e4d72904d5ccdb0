"""Intercom workspaces in several regions: each conversation from its host, with its token."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditkit import config
from auditkit.config import IntercomWorkspace, Settings
from auditkit.errors import SourceAuthError
from auditkit.harvest import harvest
from auditkit.store import Store
from tests.builders import ScratchStore
from tests.conftest import IC_EU_TOKEN, IC_TOKEN, MM_KEY
from tests.harvest.test_harvest import FakeAPI, run, settings_for

EU_TOKEN = "ic_test_SECRET_eu_t0ken_do_not_leak_4d1e"
US_HOST, EU_HOST = "api.intercom.io", "api.eu.intercom.io"
APPS = {US_HOST: ("us111111", "US", IC_TOKEN), EU_HOST: ("eu222222", "EU", EU_TOKEN)}


class RegionalAPI(FakeAPI):
    """FakeAPI with one Intercom workspace per regional host, each accepting only its token.

    Email em_0001 links ic_1 in the default (US) workspace; em_0002 links ic_eu_1 in "eu".
    """

    def __init__(self, workspace_tag: str = "eu") -> None:
        super().__init__()
        self.emails["mbx_a"][1]["tags"] = {
            "intercom_conversation_id": "ic_eu_1",
            "intercom_workspace": workspace_tag,
        }
        self.regional = {
            US_HOST: {"ic_1": self.conversations["ic_1"]},
            EU_HOST: {"ic_eu_1": {**self.conversations["ic_1"], "id": "ic_eu_1"}},
        }

    def handler(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host not in APPS:
            return super().handler(request)
        self.requests.append(request)
        app_id, region, token = APPS[host]
        if request.headers.get("Authorization") != f"Bearer {token}":
            return httpx.Response(401, json={"type": "error.list"})
        if request.url.path == "/me":
            return httpx.Response(200, json={"app": {"id_code": app_id, "region": region}})
        conversation = self.regional[host].get(request.url.path.rsplit("/", 1)[1])
        if conversation is None:
            return httpx.Response(404, json={"type": "error.list"})
        return httpx.Response(200, json=conversation)

    def intercom_requests(self) -> list[tuple[str, str, str]]:
        return [
            (r.url.host, r.url.path, r.headers["Authorization"])
            for r in self.requests
            if r.url.host in APPS
        ]


def regional_settings(tmp_path: Path, *, eu_token: str | None = EU_TOKEN) -> Settings:
    eu = IntercomWorkspace(
        name="eu", region="eu", api_url=f"https://{EU_HOST}", access_token=eu_token
    )
    return settings_for(
        tmp_path,
        intercom_api_url=f"https://{US_HOST}",
        intercom_access_token=IC_TOKEN,
        intercom_workspaces=(eu,),
    )


def dump(store: Store) -> str:
    tables = ("intercom_conversations", "harvest_runs", "quarantine", "multimail_emails")
    return json.dumps([store.query(f"SELECT * FROM {t}") for t in tables], default=str)


def test_eu_conversation_comes_from_the_eu_host_with_the_eu_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = RegionalAPI()
    caplog.set_level(logging.DEBUG)
    with ScratchStore() as store:
        result = run(api, regional_settings(tmp_path), store)
        assert result.outcome == "ok", result.errors
        assert "intercom_no_token" not in result.skipped
        # Each workspace's /me twice: the preflight (is the token good?) and enrichment.
        assert sorted(api.intercom_requests()) == [
            (EU_HOST, "/conversations/ic_eu_1", f"Bearer {EU_TOKEN}"),
            (EU_HOST, "/me", f"Bearer {EU_TOKEN}"),
            (EU_HOST, "/me", f"Bearer {EU_TOKEN}"),
            (US_HOST, "/conversations/ic_1", f"Bearer {IC_TOKEN}"),
            (US_HOST, "/me", f"Bearer {IC_TOKEN}"),
            (US_HOST, "/me", f"Bearer {IC_TOKEN}"),
        ]
        assert result.intercom_calls == 4
        rows = store.query(
            "SELECT id, found, region, app_id, inbox_url FROM intercom_conversations ORDER BY id"
        )
        assert rows == [
            (
                "ic_1",
                True,
                "us",
                "us111111",
                "https://app.intercom.com/a/inbox/us111111/inbox/conversation/ic_1",
            ),
            (
                "ic_eu_1",
                True,
                "eu",
                "eu222222",
                "https://app.eu.intercom.com/a/inbox/eu222222/inbox/conversation/ic_eu_1",
            ),
        ]
        assert EU_TOKEN not in dump(store) and IC_TOKEN not in dump(store)
        run_params = json.loads(store.query("SELECT params FROM harvest_runs")[0][0])
        assert run_params["intercom_workspaces"] == [
            {
                "name": "eu",
                "region": "eu",
                "api_url": f"https://{EU_HOST}",
                "app_id": None,
                "access_token_set": True,
            }
        ]
    assert EU_TOKEN not in caplog.text


def test_workspace_without_token_is_skipped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = RegionalAPI()
    with ScratchStore() as store:
        result = run(api, regional_settings(tmp_path, eu_token=None), store)
        assert result.outcome == "ok", result.errors
        assert result.skipped["intercom_no_token"] == 1
        assert {h for h, _, _ in api.intercom_requests()} == {US_HOST}
        assert store.query("SELECT id FROM intercom_conversations") == [("ic_1",)]
    skip_lines = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert skip_lines == [
        "Intercom enrichment skipped for 1 conversations of workspace 'eu': "
        "INTERCOM_ACCESS_TOKEN_EU is not set"
    ]


def test_unconfigured_workspace_tag_is_skipped_not_sent_to_the_default_host(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = RegionalAPI(workspace_tag="AU")
    with ScratchStore() as store:
        result = run(api, regional_settings(tmp_path), store)
        assert result.skipped["intercom_no_token"] == 1
        assert "/conversations/ic_eu_1" not in {p for _, p, _ in api.intercom_requests()}
    assert "workspace 'au': it has no [intercom.workspaces.au] table" in caplog.text


def test_wrong_eu_token_is_an_auth_error_naming_the_eu_variable(tmp_path: Path) -> None:
    api = RegionalAPI()
    settings = regional_settings(tmp_path).with_intercom_workspace("eu", access_token="ic_wrong")
    with ScratchStore() as store, pytest.raises(SourceAuthError) as info:
        run(api, settings, store)
    assert "INTERCOM_ACCESS_TOKEN_EU" in str(info.value)
    assert "ic_wrong" not in str(info.value)


def test_guide_shape_metadata_names_the_workspace(tmp_path: Path) -> None:
    """Guide-shaped records carry the workspace in `metadata`, which harvest reads too."""
    from auditkit.store.harvest_state import WORKSPACE_SQL

    with ScratchStore() as store:
        store.con.execute(
            "CREATE TEMP TABLE e AS SELECT * FROM (VALUES "
            '(\'{"intercom_workspace": "EU"}\'::JSON, NULL::JSON), '
            '(NULL::JSON, \'{"intercom_workspace": "eu"}\'::JSON), '
            '(\'{"agent": "fin"}\'::JSON, \'{"intercom_workspace": " "}\'::JSON)'
            ") AS t(tags, metadata)"
        )
        assert store.query(f"SELECT {WORKSPACE_SQL} FROM e") == [("eu",), ("eu",), (None,)]


# -- end to end: the sandbox serves both workspaces over real sockets --------------------------


def test_sandbox_eu_workspace_has_its_own_token(sandbox: Any) -> None:
    base = sandbox.base_url
    with httpx.Client(base_url=base) as client:
        eu = {"Authorization": f"Bearer {IC_EU_TOKEN}"}
        us = {"Authorization": f"Bearer {IC_TOKEN}"}
        assert client.get("/eu/me", headers=eu).json()["app"]["region"] == "EU"
        assert client.get("/eu/me", headers=us).status_code == 401
        assert client.get("/me", headers=eu).status_code == 401
        assert client.get("/eu/conversations/999999999", headers=eu).status_code == 404
    assert [e.kind for e in sandbox.requests.snapshot()] == ["intercom_me"] * 3 + [
        "intercom_conversation"
    ]


def test_sample_quarter_stores_both_workspaces_with_their_regions(
    sample_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from auditkit.devtools.sandbox import SandboxServer

    eu_emails = [
        json.loads(line)
        for line in (sample_data / "multimail" / "emails.jsonl").read_text("utf-8").splitlines()
        if '"intercom_workspace"' in line
    ]
    assert len(eu_emails) == 1  # exactly one sample message lives in the EU workspace
    eu_email = eu_emails[0]
    eu_conversation = eu_email["tags"]["intercom_conversation_id"]
    eu_app = json.loads((sample_data / "intercom" / "eu" / "me.json").read_text())["app"]
    sent = datetime.fromisoformat(eu_email["received_at"].replace("Z", "+00:00"))
    caplog.set_level(logging.DEBUG)
    with SandboxServer(
        sample_data, api_key=MM_KEY, intercom_token=IC_TOKEN, intercom_eu_token=EU_TOKEN
    ) as server:
        settings = server.aim(
            config.load(config_file=sample_data / "auditkit.toml", env={}).with_overrides(
                db_path=tmp_path / "s.duckdb", concurrency=8
            )
        )
        assert settings.intercom_workspace("eu").access_token == EU_TOKEN
        with ScratchStore() as store:
            # One day of the support mailbox keeps this fast; it holds the EU message.
            result = harvest(
                settings,
                store,
                since=datetime(sent.year, sent.month, sent.day, tzinfo=UTC),
                until=datetime(sent.year, sent.month, sent.day + 1, tzinfo=UTC),
                mailbox_ids=[eu_email["mailbox_id"]],
            )
            assert result.outcome == "ok", result.errors
            assert "intercom_no_token" not in result.skipped
            rows = dict(
                (r[0], r[1:])
                for r in store.query(
                    "SELECT id, found, region, app_id, inbox_url FROM intercom_conversations"
                )
            )
            stored = dump(store)
        paths = [e.path for e in server.requests.snapshot() if e.kind.startswith("intercom")]
    assert len(rows) > 1
    assert rows.pop(eu_conversation) == (
        True,
        "eu",
        eu_app["id_code"],
        f"https://app.eu.intercom.com/a/inbox/{eu_app['id_code']}/inbox/conversation/"
        f"{eu_conversation}",
    )
    assert {r[:2] for r in rows.values()} == {(True, "us")}
    # The preflight and the enrichment each ask /me once per workspace.
    assert paths.count("/eu/me") == 2 and paths.count("/me") == 2
    assert f"/eu/conversations/{eu_conversation}" in paths
    assert f"/conversations/{eu_conversation}" not in paths
    assert EU_TOKEN not in stored and EU_TOKEN not in caplog.text
