"""``blt schema``: the JSON Schema of the experiment config, for editor completion of TOML files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NAME = "schema"
HELP = "print the JSON Schema of the experiment config (components of installed plugins included)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="FILE", help="write the schema to FILE instead of stdout")


def run(args: argparse.Namespace) -> int:
    import blt
    from blt.core.errors import InputError
    from blt.experiment import experiment_schema

    text = json.dumps(experiment_schema(blt.make_registry()), indent=2, sort_keys=True)
    if args.out is None:
        print(text)
        return 0
    out = Path(args.out)
    try:
        out.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write schema to {out}: {exc.strerror or exc}") from None
    print(f"wrote {out}")
    return 0
