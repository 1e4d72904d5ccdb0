"""`python -m auditkit.sample`: generate the sample quarter or a large benchmark set."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from auditkit.devtools.sample.generator import generate
from auditkit.devtools.sample.world import DEFAULT_MESSAGES, DEFAULT_SEED
from auditkit.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m auditkit.sample",
        description="Generate the Northwind 2026Q3 sample quarter (or a large benchmark set).",
    )
    parser.add_argument(
        "--messages",
        type=int,
        default=DEFAULT_MESSAGES,
        help=f"outbound messages in total, planted ones included (default {DEFAULT_MESSAGES})",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"RNG seed (default {DEFAULT_SEED})"
    )
    args = parser.parse_args(argv)
    try:
        summary = generate(args.out, messages=args.messages, seed=args.seed)
    except ConfigError as exc:
        parser.error(str(exc))
    print(json.dumps(summary, sort_keys=True))  # noqa: T201  (CLI entry point output)
    return 0
