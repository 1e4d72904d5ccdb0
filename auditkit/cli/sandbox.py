"""`auditkit sandbox`: serve a sample dataset as a local MultiMail + Intercom API until Ctrl-C
(or SIGTERM)."""

from __future__ import annotations

import signal
import threading
from contextlib import ExitStack
from pathlib import Path
from types import FrameType

import click

from auditkit.cli.base import cli
from auditkit.errors import ConfigError


@cli.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port on 127.0.0.1 (0 picks a free one).",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Dataset written by `python -m auditkit.sample` [default: the bundled sample_data/].",
)
@click.option(
    "--latency-ms",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    help="Delay added to every request.",
)
@click.option(
    "--fail-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of requests answered with a random 429 or 5xx (seeded).",
)
@click.option(
    "--api-key",
    default="mm_test_sandbox_key",
    show_default=True,
    help="Bearer token the MultiMail endpoints accept.",
)
@click.option(
    "--intercom-token",
    default="ic_test_sandbox_token",
    show_default=True,
    help="Bearer token the Intercom endpoints accept.",
)
@click.option(
    "--mutated",
    is_flag=True,
    help="Start with multimail/mutations.json applied (the tampered audit log).",
)
@click.option(
    "--dialect",
    default=None,
    metavar="NAME",
    help="Serve the data rendered in this MultiMail dialect (same facts, other audit names "
    "and wording; see auditkit.sample_dialects), e.g. decide-key. Rendered into a "
    "temporary folder that is removed on exit.",
)
@click.option(
    "--accounts",
    "account_count",
    type=click.IntRange(1, 2),
    default=1,
    show_default=True,
    help="2: also serve a second account, the sample quarter generated with seed 7 (into a "
    "temporary folder), under the key API_KEY_2 (see [accounts.NAME] in the README).",
)
def sandbox(
    port: int,
    data_dir: Path | None,
    latency_ms: float,
    fail_rate: float,
    api_key: str,
    intercom_token: str,
    mutated: bool,
    dialect: str | None,
    account_count: int,
) -> None:
    """Serve sample data as a local MultiMail and Intercom API, until Ctrl-C.

    MultiMail is under /v1 and Intercom's /me and /conversations/{id} are on the same
    host, so both base URLs point at it. The tokens are test values that exist only
    for this sandbox.

    \b
    Examples:
      auditkit sandbox                                # bundled sample quarter on :8765
      auditkit sandbox --port 0 --latency-ms 20 --fail-rate 0.05
      auditkit sandbox --data /tmp/bench-1m --mutated
      auditkit sandbox --dialect decide-key           # the sample quarter in another dialect
      auditkit sandbox --accounts 2                   # two accounts, told apart by API key
    """
    from auditkit.devtools import bundled_sample_data
    from auditkit.devtools.sandbox import SandboxServer

    data_dir = data_dir or bundled_sample_data()
    if not (data_dir / "multimail").is_dir():
        raise ConfigError(
            f"no sample data in {data_dir}; generate it with "
            f"`python -m auditkit.sample --out {data_dir}` or pass --data DIR"
        )
    with ExitStack() as stack:  # the sandbox stops before a rendered folder is removed
        served, described = data_dir, str(data_dir)
        if dialect is not None:
            from auditkit.devtools.dialects import rendered

            served = stack.enter_context(rendered(dialect, data_dir))
            described = f"{data_dir}, rendered in dialect {dialect}"
        more_accounts = {}
        if account_count > 1:
            import tempfile

            from auditkit.devtools.demo_accounts import SECOND_SEED
            from auditkit.devtools.sample.generator import generate

            second = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "second"
            generate(second, seed=SECOND_SEED)
            more_accounts[f"{api_key}_2"] = second
        server = SandboxServer(
            served,
            api_key=api_key,
            intercom_token=intercom_token,
            latency_ms=latency_ms,
            fail_rate=fail_rate,
            port=port,
            more_accounts=more_accounts,
        )
        stack.enter_context(server)
        if mutated:
            for key in (api_key, *more_accounts):
                server.apply_mutations(key)
        url = server.base_url
        click.echo(f"Sandbox MultiMail + Intercom API on {url} (data: {described})")
        click.echo("Point auditkit at it with:")
        click.echo(f"export MULTIMAIL_API_URL={url}")
        click.echo(f"export MULTIMAIL_API_KEY={api_key}")
        click.echo(f"export INTERCOM_API_URL={url}")
        click.echo(f"export INTERCOM_ACCESS_TOKEN={intercom_token}")
        for key in more_accounts:
            click.echo(
                f"Second account (sample generated with seed {SECOND_SEED}), e.g. "
                "[accounts.second] in auditkit.toml:"
            )
            click.echo(f"export MULTIMAIL_API_URL_SECOND={url}")
            click.echo(f"export MULTIMAIL_API_KEY_SECOND={key}")
        click.echo("Press Ctrl-C to stop.")
        # `kill`, a process supervisor or a CI teardown stops it as Ctrl-C does: the
        # servers shut down and the second account's generated folder is removed.
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            click.echo("stopped")
        finally:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
