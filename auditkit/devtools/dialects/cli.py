"""`python -m auditkit.sample_dialects`: render a dataset in a dialect, or list them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from auditkit.devtools.dialects.axes import DIALECTS
from auditkit.devtools.dialects.render import render
from auditkit.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m auditkit.sample_dialects",
        description="Render a sample dataset in another MultiMail dialect (same facts).",
    )
    parser.add_argument("--dialect", help=f"one of: {', '.join(DIALECTS)}")
    parser.add_argument("--out", type=Path, help="output folder (new or empty)")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="dataset written by `python -m auditkit.sample` (default: the bundled sample_data/)",
    )
    parser.add_argument("--list", action="store_true", help="list the dialects and their axes")
    args = parser.parse_args(argv)
    if args.list:
        for d in DIALECTS.values():
            print(  # noqa: T201  (CLI entry point output)
                f"{d.name:20} vocabulary={d.vocabulary} approver={d.approver} "
                f"opt_out={d.opt_out} postal={d.postal} type_tags={d.type_tags}"
            )
        return 0
    if not args.dialect or args.out is None:
        parser.error("--dialect and --out are required")
    try:
        summary = render(args.data, args.out, args.dialect)
    except ConfigError as exc:
        parser.error(str(exc))
    print(json.dumps(summary, sort_keys=True))  # noqa: T201  (CLI entry point output)
    return 0
