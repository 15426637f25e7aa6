"""``blt ablate [CONFIG] --out DIR``: train every variant to one training-FLOPs budget and compare BPB."""

from __future__ import annotations

import argparse

NAME = "ablate"
HELP = "run a matched-compute ablation (default: the shipped patcher ablation) and print the BPB table"
DESCRIPTION = (
    "Train a base experiment and its named variants, each to the same training-FLOPs budget, and write "
    "DIR/results.json, DIR/results.md and DIR/bpb_vs_flops.png. Rerunning skips finished variants and "
    "resumes an interrupted one. Without CONFIG, runs blt/configs/ablations/default.toml."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="ablation TOML ([base], [budget], [variants.NAME])")
    parser.add_argument("--out", default="runs/ablation", help="output directory (default: runs/ablation)")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from blt.train.ablation import COLUMNS, default_ablation_path, run_ablation

    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:  # a log file or pipe: do not squeeze the table into 80 columns
        console = Console(highlight=False, soft_wrap=True, width=200)
    path = args.config or default_ablation_path()

    def announce(name: str, action: str) -> None:
        console.print(f"[bold]{name}[/]: " + ("finished earlier, skipped" if action == "skip" else "training"))

    records = run_ablation(path, args.out, on_variant=announce)
    table = Table(title=f"{path}: held-out bits per byte at matched training FLOPs")
    for key, title, _ in COLUMNS:
        table.add_column(title, justify="left" if key in ("name", "fingerprint") else "right")
    for r in records:
        table.add_row(*(fmt.format(r[key]) for key, _, fmt in COLUMNS))
    console.print(table)
    console.print(f"wrote {args.out}/results.json, results.md, bpb_vs_flops.png")
    return 0
