"""``blt plugins``: every registered component with the plugin and distribution that provides it."""

from __future__ import annotations

import argparse
import json
from typing import Any

NAME = "plugins"
HELP = "list registered patchers, encoders, decoders, attention backends and models with their provenance"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument("--family", choices=["patchers", "encoders", "decoders", "attention", "models"], help="only this family")


def component_rows(registry: Any, family: str | None = None) -> list[dict[str, Any]]:
    """One dict per component: family, kind, plugin, distribution, version, incremental, available."""
    from blt.core.specs import SPEC_TYPES

    rows = []
    for fam in SPEC_TYPES if family is None else (family,):
        for kind, spec in registry.family(fam).items():
            prov = registry.provider(fam, kind)
            reason = None
            if hasattr(spec, "is_available"):
                try:
                    reason = spec.is_available()
                except Exception as exc:  # a probe that crashes means "not available", with why
                    reason = f"availability check raised {type(exc).__name__}: {exc}"
            rows.append({
                "family": fam, "kind": kind, "plugin": prov.plugin, "distribution": prov.distribution,
                "version": prov.version, "incremental": getattr(spec, "incremental", None),
                "available": reason is None, "reason": reason, "summary": spec.summary,
            })
    return rows


def run(args: argparse.Namespace) -> int:
    import blt

    rows = component_rows(blt.make_registry(), args.family)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="blt components")
    for col in ("family", "kind", "plugin", "distribution", "incremental", "available"):
        table.add_column(col, overflow="fold")
    for r in rows:
        inc = "" if r["incremental"] is None else ("yes" if r["incremental"] else "no")
        avail = "yes" if r["available"] else f"[red]no[/]: {r['reason']}"
        table.add_row(r["family"], r["kind"], r["plugin"], f"{r['distribution']} {r['version']}", inc, avail)
    Console().print(table)
    return 0
