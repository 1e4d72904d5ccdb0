"""`auditkit demo --accounts 2`: two MultiMail accounts in one store, offline.

One sandbox serves both accounts from one address and tells them apart by API key, as
MultiMail does: `northwind` is the sample quarter (with its archive), `northwind_seed7` a
smaller quarter from the same generator with another seed (`SECOND_SEED`,
`SECOND_MESSAGES`), written to a temporary folder. The settings name both under
`[accounts]`; each account then runs the whole job on its own (`run_pipeline`: harvest,
the sample's tampering, harvest again, check, pack) into the same store, and its pack goes
to OUT/<account>/.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

from auditkit.config import load
from auditkit.config_accounts import Account
from auditkit.devtools import DEMO_CONCURRENCY, bundled_sample_data
from auditkit.devtools.sample.generator import generate
from auditkit.devtools.sandbox import SandboxServer
from auditkit.errors import ConfigError
from auditkit.findings import Period
from auditkit.pack import check_replaceable
from auditkit.pipeline import PipelineResult, run_pipeline

FIRST, SECOND = "northwind", "northwind_seed7"
SECOND_SEED = 7
# Big enough that the generator plants every kind of case; small enough that the second
# account adds seconds, not the first's minute, to the demo.
SECOND_MESSAGES = 600


def run_demo_accounts(
    out_dir: Path,
    data_dir: Path | None,
    period: Period,
    *,
    log: Callable[[str], None],
) -> dict[str, PipelineResult]:
    """Harvest both accounts into OUT.duckdb and write OUT/<account>/ for each."""
    data_dir = data_dir or bundled_sample_data()
    if not (data_dir / "multimail").is_dir():
        raise ConfigError(f"sample data not found in {data_dir}; pass --data DIR")
    packs = {FIRST: out_dir / FIRST, SECOND: out_dir / SECOND}
    for pack in packs.values():
        check_replaceable(pack)  # before anything is deleted or harvested
    db_path = Path(f"{out_dir}.duckdb")
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in (db_path, Path(f"{db_path}.wal")):
        stale.unlink(missing_ok=True)
    archive_dir, keys = data_dir / "archive", data_dir / "dns" / "keys.txt"
    has_archive = archive_dir.is_dir() and keys.is_file()

    keys_by_account = {name: f"mm_test_{secrets.token_hex(12)}" for name in packs}
    results: dict[str, PipelineResult] = {}
    with tempfile.TemporaryDirectory(prefix="auditkit-demo-") as tmp:
        second_data = Path(tmp) / SECOND
        generate(second_data, messages=SECOND_MESSAGES, seed=SECOND_SEED)
        with SandboxServer(
            data_dir,
            api_key=keys_by_account[FIRST],
            intercom_token=f"ic_test_{secrets.token_hex(12)}",
            intercom_eu_token=f"ic_test_{secrets.token_hex(12)}",
            more_accounts={keys_by_account[SECOND]: second_data},
        ) as server:
            settings = load(data_dir / "auditkit.toml", db_path=db_path)
            settings = replace(
                settings,
                concurrency=DEMO_CONCURRENCY,
                accounts=tuple(
                    Account(name, server.base_url, key) for name, key in keys_by_account.items()
                ),
            )
            for name, key in keys_by_account.items():
                log(f"account {name}")
                first = name == FIRST and has_archive  # the archive is the sample's mail
                results[name] = run_pipeline(
                    server.aim(settings.for_account(name), api_key=key),
                    period,
                    packs[name],
                    between_harvests=partial(server.apply_mutations, key),
                    archive_paths=[archive_dir] if first else [],
                    archive_keys=keys if first else None,
                    log=log,
                )
    return results
