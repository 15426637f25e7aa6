"""``blt check-plugin [--family F] KIND``: run a family's contract suite (``blt.testing``) on a registered kind."""

from __future__ import annotations

import argparse

NAME = "check-plugin"
HELP = "run the contract suite of a registered patcher, encoder, decoder, attention backend or model"
DESCRIPTION = (HELP + ". The family may be left out when KIND is registered in one family only "
               "(cross_attention is an encoder and a decoder; byte a patcher and a model). Exit 0 when every "
               "contract holds, 1 naming each failing contract.")
FAMILY_NAMES = ("patcher", "encoder", "decoder", "attention", "model")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", help="the kind to check, e.g. space, pooling, sdpa, blt, or one from an installed plugin")
    parser.add_argument("--family", choices=FAMILY_NAMES, help="the family KIND belongs to (needed when KIND is in several)")
    parser.add_argument("--config", metavar="FILE",
                        help="TOML/JSON: an experiment file (its table for the family, [plugins]; for a model also "
                             "[encoder], [decoder] and [patcher]) or one component table")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field of the component's table (VALUE read as TOML)")
    parser.add_argument("--max-examples", type=int, default=None, metavar="N",
                        help="hypothesis examples per contract (default: the family's, 50 for patchers)")
    parser.add_argument("--device", default="cpu", help="device for encoder, decoder, attention and model suites (default cpu)")
    parser.add_argument("--forward-only", action="store_true",
                        help="attention: compare forward outputs only (for a backend that cannot train on the device)")


def _component_table(data: dict, section: str, kind: str) -> dict:
    """The file's table for this component (an experiment's section, or the file itself), if it is this kind's."""
    table = data.get(section, data if "kind" in data else {})
    if not isinstance(table, dict):
        table = {"kind": table} if isinstance(table, str) else {}
    return dict(table) if table.get("kind", kind) == kind else {}


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from blt.cli.overrides import parse_overrides
    from blt.core.config import read_config_file
    from blt.core.errors import InputError
    from blt.core.registry import registry_for
    from blt.testing.families import FAMILIES, resolve_family, run_family

    if args.max_examples is not None and args.max_examples < 1:
        raise InputError(f"--max-examples must be >= 1, got {args.max_examples}")
    data = read_config_file(args.config) if args.config else {}
    registry = registry_for(data)
    family = resolve_family(registry, args.kind, args.family)
    fam = FAMILIES[family]
    config = {**_component_table(data, family, args.kind), **parse_overrides(args.overrides), "kind": args.kind}
    options: dict = {}
    if family == "attention" and args.forward_only:
        options["backward"] = False
    if family == "model":
        options["experiment"] = {s: data[s] for s in ("encoder", "decoder") if isinstance(data.get(s), dict)}
        patcher = data.get("patcher")
        if isinstance(patcher, dict) and "kind" in patcher:
            options["patchers"] = {patcher["kind"]: {k: v for k, v in patcher.items() if k != "kind"}}
    budget = args.max_examples if args.max_examples is not None else fam.examples
    prov = registry.provider(fam.registry_name, args.kind)
    console = Console(highlight=False)
    with console.status(f"checking {fam.what} {args.kind} ({budget} examples per contract)"):
        results = run_family(family, args.kind, registry=registry, config=config, max_examples=budget,
                             device=args.device, **options)
    out = Table(title=f"{fam.what} contracts for {args.kind!r} ({prov})")
    for col in ("contract", "result", "detail"):
        out.add_column(col, overflow="fold")
    style = {"pass": "[green]pass[/]", "skip": "[yellow]skip[/]", "FAIL": "[bold red]FAIL[/]"}
    for r in results:
        out.add_row(escape(r.name), style[r.status], escape(r.detail))
    console.print(out)
    failed = [r for r in results if not r.passed]
    skipped = [r for r in results if r.skipped]
    for r in failed:
        console.print(f"[bold red]{escape(r.name)}[/] counterexample: {escape(r.detail)}")
    tail = f", {len(skipped)} skipped" if skipped else ""
    console.print(f"{len(results) - len(failed) - len(skipped)} passed, {len(failed)} failed{tail}")
    if failed:
        console.print(f"[bold red]failed:[/] {', '.join(escape(r.name) for r in failed)}")
    return 1 if failed else 0
