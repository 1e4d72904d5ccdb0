"""Two MultiMail accounts in one store never see each other's rows (issue 15).

The two accounts share every id (mailboxes, emails, audit entries, keys, conversations)
but not their data: account `beta`'s dataset is account `alpha`'s with every name and
address rewritten (northwind → fabrikam) and one more violation of its own. Both are
harvested from one sandbox, which tells them apart by API key, into one store. Then for
each account: the rows are all there (identical ids did not overwrite each other), every
control result equals the one from a store holding that account alone, and no file of its
pack holds a trace of the other account.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from auditkit.config import Settings
from auditkit.config_accounts import Account
from auditkit.controls import run_controls
from auditkit.controls.settings import vocabulary_for
from auditkit.devtools.sample.generator import generate
from auditkit.devtools.sandbox import SandboxServer
from auditkit.findings import parse_period
from auditkit.harvest import harvest
from auditkit.report import write_pack
from auditkit.store import HARVESTED_TABLES, Store
from auditkit.store.digests import VOLATILE_COLUMNS

# End to end: two datasets generated, harvested from one sandbox over sockets, four times.
pytestmark = pytest.mark.slow

Q3 = parse_period("2026Q3")
KEYS = {"alpha": "mm_test_alpha_key_0001", "beta": "mm_test_beta_key_0002"}
# Each account's own words: the other's pack must never hold them.
MARKERS = {"alpha": b"northwind", "beta": b"fabrikam"}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("accounts")
    alpha = root / "alpha"
    generate(alpha, messages=60, seed=42)
    beta = root / "beta"
    shutil.copytree(alpha, beta)
    for path in beta.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl"):
            text = path.read_text(encoding="utf-8")
            path.write_text(
                text.replace("Northwind", "Fabrikam").replace("northwind", "fabrikam"),
                encoding="utf-8",
            )
    # A violation alpha does not have, on an id both share: one of beta's delivered
    # messages is approved an hour after its delivery (OVS-002).
    emails = beta / "multimail" / "emails.jsonl"
    lines = emails.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        record = json.loads(line)
        if record.get("approved_at") and record.get("delivered_at"):
            delivered = datetime.fromisoformat(record["delivered_at"])
            record["approved_at"] = (delivered + timedelta(hours=1)).isoformat()
            lines[i] = json.dumps(record)
            break
    emails.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"alpha": alpha, "beta": beta}


@pytest.fixture(scope="module")
def sandbox(datasets: dict[str, Path]) -> Iterator[SandboxServer]:
    with SandboxServer(
        datasets["alpha"], api_key=KEYS["alpha"], more_accounts={KEYS["beta"]: datasets["beta"]}
    ) as server:
        yield server


def _settings(server: SandboxServer, db: Path, name: str) -> Settings:
    base = Settings(
        db_path=db,
        concurrency=4,
        accounts=tuple(Account(n, server.base_url, key) for n, key in KEYS.items()),
    )
    return server.aim(base.for_account(name), api_key=KEYS[name])


def _harvest(server: SandboxServer, db: Path, name: str) -> None:
    settings = _settings(server, db, name)
    with Store(db, account=name) as store:
        assert harvest(settings, store).outcome == "ok"


@pytest.fixture(scope="module")
def shared(sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("shared") / "shared.duckdb"
    for name in KEYS:
        _harvest(sandbox, db, name)
    return db


def _findings(db: Path, settings: Settings) -> list[dict[str, Any]]:
    with Store(db, read_only=True, account=settings.account) as store:
        results = run_controls(store, settings, Q3)
    return [
        {
            "control": r.id,
            "status": r.status,
            "findings": [_stable(f.to_dict()) for f in r.findings],
        }
        for r in results
    ]


def _stable(value: Any) -> Any:
    """`value` without the harvest's own timestamps, which differ between two harvests."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE_COLUMNS}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def test_identical_ids_are_two_rows_each_accounts_own(shared: Path) -> None:
    with Store(shared, read_only=True) as store:
        assert store.stored_accounts() == ["alpha", "beta"]
        for table in HARVESTED_TABLES:
            per_account = dict(
                store.query(f"SELECT account, count(*) FROM {store.base(table)} GROUP BY 1")
            )
            if per_account:
                assert per_account["alpha"] == per_account["beta"] > 0, table
        shared_ids = store.query(
            f"SELECT count(*) FROM {store.base('multimail_emails')} a "
            f"JOIN {store.base('multimail_emails')} b USING (id) "
            "WHERE a.account = 'alpha' AND b.account = 'beta' AND a.raw_sha256 <> b.raw_sha256"
        )[0][0]
    assert shared_ids > 50  # the same ids, different content


def test_each_accounts_control_results_equal_a_store_of_its_own(
    shared: Path, sandbox: SandboxServer, tmp_path: Path
) -> None:
    by_account = {}
    for name in KEYS:
        alone = tmp_path / f"{name}.duckdb"
        _harvest(sandbox, alone, name)
        settings = _settings(sandbox, shared, name)
        in_shared = _findings(shared, settings)
        assert in_shared == _findings(alone, replace(settings, db_path=alone))
        by_account[name] = in_shared
        text = json.dumps(in_shared).lower().encode()
        other = next(n for n in KEYS if n != name)
        assert MARKERS[other] not in text
    # Different data, different verdicts: the scoping is not hiding a copy of one account.
    assert by_account["alpha"] != by_account["beta"]


@pytest.mark.parametrize("name", sorted(KEYS))
def test_an_accounts_pack_holds_nothing_of_the_other(
    shared: Path, sandbox: SandboxServer, tmp_path: Path, name: str
) -> None:
    settings = _settings(sandbox, shared, name)
    with Store(shared, read_only=True, account=name) as store:
        vocabulary = vocabulary_for(store.con, settings)
        results = run_controls(store, settings, Q3, vocabulary=vocabulary)
        pack = tmp_path / "pack"
        write_pack(
            store,
            settings,
            Q3,
            pack,
            results=results,
            vocabulary=vocabulary,
            formats=("csv", "html"),
        )
    other = next(n for n in KEYS if n != name)
    files = sorted(pack.iterdir())
    assert {f.name for f in files} >= {"messages.csv", "audit_log.csv", "report.html"}
    for f in files:
        data = f.read_bytes().lower()
        assert MARKERS[other] not in data, f"{f.name} of {name}'s pack holds {other}'s data"
    assert MARKERS[name] in (pack / "messages.csv").read_bytes().lower()
    manifest = json.loads((pack / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["parameters"]["account"] == name
