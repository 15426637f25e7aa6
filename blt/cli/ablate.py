"""``blt ablate [CONFIG] --out DIR [--jobs N] [--seeds 0,1,2]``: train every variant (x seed x
grid point) to matched training FLOPs and compare held-out BPB with 95% intervals."""

from __future__ import annotations

import argparse
from typing import Any


def esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)

NAME = "ablate"
HELP = "run a matched-compute ablation (default: the shipped patcher ablation) and print the BPB table"
DESCRIPTION = (
    "Train a base experiment and its named variants, once per seed and grid point, each to the same "
    "training-FLOPs budget, and write DIR/results.json, DIR/results.md, DIR/bpb_vs_flops.png (and "
    "DIR/robustness.png with [eval] suites). Rerunning reuses finished runs and resumes interrupted "
    "ones. Without CONFIG, runs blt/configs/ablations/default.toml."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="ablation TOML ([base], [budget], [grid], [eval], [variants.NAME])")
    parser.add_argument("--out", default="runs/ablation", help="output directory (default: runs/ablation)")
    parser.add_argument("--jobs", type=int, default=None, metavar="N",
                        help="worker processes, each with CPU cores / N threads when N > 1 (default: one single-thread "
                             "worker per CPU core, at most one per run; 1 on a CUDA machine); 1 trains in this process")
    parser.add_argument("--seeds", default=None, metavar="S,S,...",
                        help="seeds to run (replaces [budget] seeds), e.g. 0,1,2")


class _Display:
    """Everything the ablation tells the user: one line per run event and, with workers, one rich
    progress display (runs done / total, and a line per running run) drawn by this process only."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self.progress: Any = None
        self.overall: Any = None
        self.per_run: dict[str, Any] = {}
        self.total = 0
        self.done = 0
        self.ablation: Any = None

    def print(self, text: str) -> None:
        (self.progress.console if self.progress is not None else self.console).print(text)

    def __call__(self, event: str, **f: Any) -> None:
        if event == "plan":
            self.ablation = f["ablation"]
            self.total, self.done = f["total"], f["total"] - f["todo"]
            self.print(f"{f['total']} runs ({f['total'] - f['todo']} finished earlier); "
                       + (f"{f['jobs']} worker processes" if f["jobs"] > 1 else "one at a time in this process"))
            if f["jobs"] > 1 and f["todo"]:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

                self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                         TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=self.console)
                self.progress.start()
                self.overall = self.progress.add_task("runs", total=self.total, completed=self.done, info="")
        elif event == "skip":
            self.print(f"[bold]{esc(f['spec'].label)}[/]: finished earlier, skipped (BPB {f['record']['bpb']:.4f})")
        elif event == "start":
            label = f["spec"].label
            where = f"[{self.done + len(self.per_run) + 1}/{self.total}] "
            self.print(f"{where}[bold]{esc(label)}[/]: training")
            if self.progress is not None:
                self.per_run[label] = self.progress.add_task(f"  {esc(label)}", total=None, info="starting")
            else:
                self.per_run[label] = None
        elif event == "done":
            label, r = f["spec"].label, f["record"]
            self.done += 1
            self.print(f"[bold]{esc(label)}[/]: done, held-out BPB {r['bpb']:.4f} ({r['steps']} steps, {r['wall_s']:.1f} s)")
            task = self.per_run.pop(label, None)
            if self.progress is not None:
                if task is not None:
                    self.progress.remove_task(task)
                self.progress.update(self.overall, completed=self.done)
        elif event == "say":
            self.print(f"[bold]{esc(f['label'])}[/]: {esc(f['message'])}")
        elif event == "tick" and self.progress is not None:
            for spec, row in f["running"]:
                task = self.per_run.get(spec.label)
                if task is not None and row is not None:
                    self.progress.update(task, completed=row["step"], info=f"step {row['step']}  bpb {row['bpb']:.4f}  {row['bytes_per_s']:,.0f} B/s")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from blt.ablation.results import main_table
    from blt.ablation.runner import run_ablation
    from blt.ablation.spec import default_ablation_path, parse_seeds
    from blt.core.errors import ConfigError

    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:  # a log file or pipe: do not squeeze the table into 80 columns
        console = Console(highlight=False, soft_wrap=True, width=250)
    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs {args.jobs}: expected a positive number of worker processes")
    path = args.config or default_ablation_path()
    seeds = parse_seeds(args.seeds) if args.seeds is not None else None
    display = _Display(console)
    try:
        results = run_ablation(path, args.out, seeds=seeds, jobs=args.jobs, report=display)
    finally:
        display.close()
    head, rows = main_table(display.ablation, results)
    table = Table(title=f"{path}: held-out bits per byte at matched training FLOPs (mean ± 95% half-width over seeds)")
    for i, title in enumerate(head):
        table.add_column(title, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    extra = ", robustness.png" if any(e.get("eval") for e in results) else ""
    console.print(f"wrote {args.out}/results.json, results.md, bpb_vs_flops.png{extra}")
    return 0
