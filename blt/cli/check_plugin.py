"""``blt check-plugin KIND``: run the patcher contract suite (``blt.testing``) on a registered kind."""

from __future__ import annotations

import argparse

NAME = "check-plugin"
HELP = "run the patcher contract suite on a registered patcher kind"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", help="patcher kind, e.g. space or one from an installed plugin")
    parser.add_argument("--config", metavar="FILE", help="TOML/JSON: an experiment file ([patcher], [plugins]) or one patcher table")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a patcher field (VALUE read as TOML)")
    parser.add_argument("--max-examples", type=int, default=50, metavar="N", help="hypothesis examples per contract (default 50)")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from blt.cli.overrides import parse_overrides
    from blt.core.config import read_config_file
    from blt.core.errors import InputError
    from blt.core.registry import registry_for
    from blt.testing import run_contracts

    if args.max_examples < 1:
        raise InputError(f"--max-examples must be >= 1, got {args.max_examples}")
    data = read_config_file(args.config) if args.config else {}
    registry = registry_for(data)
    registry.spec("patchers", args.kind, path="$.patcher")  # unknown kind: list the registered ones
    table = dict(data.get("patcher", data if "kind" in data else {}))
    if table.get("kind", args.kind) != args.kind:
        table = {}
    config = {**table, **parse_overrides(args.overrides), "kind": args.kind}
    prov = registry.provider("patchers", args.kind)
    console = Console(highlight=False)
    with console.status(f"checking {args.kind} ({args.max_examples} examples per contract)"):
        results = run_contracts(args.kind, registry=registry, config=config, max_examples=args.max_examples)
    out = Table(title=f"contracts for {args.kind!r} ({prov})")
    for col in ("contract", "result", "detail"):
        out.add_column(col, overflow="fold")
    for r in results:
        out.add_row(r.name, "[green]pass[/]" if r.passed else "[bold red]FAIL[/]", escape(r.detail))
    console.print(out)
    failed = [r for r in results if not r.passed]
    for r in failed:
        console.print(f"[bold red]{r.name}[/] counterexample: {escape(r.detail)}")
    console.print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0
