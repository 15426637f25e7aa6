"""``blt eval CHECKPOINT [FILES...] [--suite noise|chars]``: held-out bits per byte (with BPB by
Unicode script and by source), or the noise-robustness / character-level suites."""

from __future__ import annotations

import argparse
from typing import Any

NAME = "eval"
SCORE_BATCH = 16  # rows per forward when scoring without gradients (at least; the run's batch if larger)
HELP = "evaluate a trained run, export or checkpoint: BPB (by script and source), or --suite noise|chars"
DESCRIPTION = (
    "Evaluate CHECKPOINT (a run directory, its export/ directory or a checkpoints/step_* directory) on "
    "FILES (text or JSON Lines files, or directories), or on the run's held-out split when no FILES are given. "
    "Without --suite: bits per byte, bytes/s, average patch size, and BPB by Unicode script and by source. "
    "--suite noise: BPB on the clean text and under the BLT paper's five perturbations (per original byte). "
    "--suite chars: CUTE-style character-level multiple-choice tasks built from the text's words."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="run directory, export directory or checkpoint directory")
    parser.add_argument("files", nargs="*", help="documents to evaluate on (default: the run's held-out split)")
    parser.add_argument("--suite", default=None, help="noise or chars (default: plain BPB with its breakdown)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the suite's perturbations / task items (default 0)")
    parser.add_argument("--items", type=int, default=None, help="--suite chars: items per task (default 32)")
    parser.add_argument("--max-bytes", type=int, default=None, help="stop after this many bytes of text")
    parser.add_argument("--seq-len", type=int, default=None, help="row length in bytes (default: the run's)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="rows per forward pass (default: the run's; at least 16 when scoring documents)")
    parser.add_argument("--text-field", default=None, help="JSON Lines text field (default: the run's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def _progress(enabled: bool):
    """A rich progress bar on stderr (only on a terminal) and its ``(done, total)`` callback."""
    import sys

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("scoring windows"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=True, disable=not (enabled and sys.stderr.isatty()))
    task = bar.add_task("score", total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return bar, update


def run(args: argparse.Namespace) -> int:
    import json

    import msgspec
    from rich.console import Console

    from blt.core.errors import InputError
    from blt.evaluation.suites import SUITES
    from blt.train.weights import load_trained

    if args.suite is not None and args.suite not in SUITES:
        raise InputError(f"unknown suite {args.suite!r}; choose one of {', '.join(SUITES)}")
    if args.max_bytes is not None and args.max_bytes < 1:
        raise InputError(f"--max-bytes must be positive, got {args.max_bytes}")
    for flag in ("seq_len", "batch_size", "items"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise InputError(f"--{flag.replace('_', '-')} must be positive, got {value}")
    config, _registry, patcher, model = load_trained(args.checkpoint)
    changes: dict[str, Any] = {}
    if args.files:
        from blt.data.sources import expand_files

        expand_files(args.files)  # missing paths fail here, with the path
        changes["heldout"] = list(args.files)
    if args.seq_len:
        changes["seq_len"] = args.seq_len
    if args.text_field:
        changes["text_field"] = args.text_field
    config = msgspec.structs.replace(config, data=msgspec.structs.replace(config.data, **changes))
    documents = _documents(config, args)
    console = Console(highlight=False, soft_wrap=True)
    where = "the held-out split" if not args.files else ", ".join(args.files)
    bar, update = _progress(not args.json)
    with bar:
        if args.suite is None:
            out = _plain(config, patcher, model, documents, args, update)
        else:
            from blt.evaluation.score import Scorer
            from blt.evaluation.suites import run_suite

            scorer = Scorer(config, patcher, model)
            batch = args.batch_size or max(config.data.batch_size, SCORE_BATCH)
            options = {"n": args.items} if args.suite == "chars" and args.items else {}
            out = run_suite(args.suite, scorer, documents, seed=args.seed, max_bytes=args.max_bytes,
                            batch_size=batch, progress=update, **options)
    if args.json:
        console.print(json.dumps(out))
        return 0
    title = f"{args.checkpoint} on {where}"
    tables = {None: _plain_tables, "noise": _noise_table, "chars": _chars_table}[args.suite](out, title)
    for table in tables:
        console.print(table)
    return 0


def _documents(config: Any, args: argparse.Namespace) -> list:
    from blt.evaluation.documents import file_documents, heldout_documents

    if args.files:
        return file_documents(list(args.files), config.data.text_field, fmt=config.data.format, max_bytes=args.max_bytes)
    return heldout_documents(config, max_bytes=args.max_bytes)


def _plain(config: Any, patcher: Any, model: Any, documents: list, args: argparse.Namespace, update: Any) -> dict[str, Any]:
    import torch

    from blt.data import open_store
    from blt.evaluation.breakdown import breakdown
    from blt.evaluation.score import Scorer
    from blt.train.evaluate import evaluate
    from blt.train.setup import measure_avg_patch_size, measure_bytes_per_position, param_count

    data = config.data
    batch_size = args.batch_size or data.batch_size
    store = open_store(data, "heldout", patcher, config.patcher)
    result = evaluate(model, store, seq_len=data.seq_len, batch_size=batch_size, max_bytes=args.max_bytes,
                      device=torch.device("cpu"), dtype="fp32")
    stats = result.get("stats")
    if isinstance(stats, dict) and "avg_patch_size" in stats:
        avg = float(stats["avg_patch_size"])  # what the model realised (e.g. its own chunking)
    else:
        avg = measure_avg_patch_size(store) * measure_bytes_per_position(store)  # bytes per patch
    out: dict[str, Any] = {"bpb": result["bpb"], "bytes": result["bytes"], "bytes_per_s": result["bytes_per_s"],
                           "avg_patch_size": avg, "params": param_count(model), "documents": store.n_docs}
    if isinstance(stats, dict):
        out["stats"] = stats
    if not callable(getattr(model, "target_nats", None)):  # plain BPB still holds; say why the breakdown is missing
        out["note"] = f"no BPB by script or source: model {config.model.kind!r} has no target_nats (per-byte scores)"
    else:
        scoring = args.batch_size or max(batch_size, SCORE_BATCH)
        out.update(breakdown(Scorer(config, patcher, model), documents, batch_size=scoring, progress=update))
    return out


def _plain_tables(out: dict[str, Any], title: str) -> list:
    from rich.table import Table

    table = Table(title=title)
    stats = out.get("stats") or {}
    extra = [k for k in stats if k != "avg_patch_size"]
    for col in ("BPB", "target bytes", "bytes/s", "avg patch", "params", "documents", *extra):
        table.add_column(col, justify="right")
    table.add_row(f"{out['bpb']:.4f}", f"{out['bytes']:,}", f"{out['bytes_per_s']:,.0f}", f"{out['avg_patch_size']:.2f}",
                  f"{out['params']:,}", f"{out['documents']:,}", *(f"{float(stats[k]):.4g}" for k in extra))
    tables: list[Any] = [table]
    if "note" in out:
        tables.append(out["note"])
    for key, what in (("by_script", "script"), ("by_source", "source")):
        if key not in out:
            continue
        sub = Table(title=f"BPB by {what} (each document scored alone, rolling windows)")
        sub.add_column(what)
        sub.add_column("BPB", justify="right")
        sub.add_column("bytes", justify="right")
        for name, row in out[key].items():
            sub.add_row(name, f"{row['bpb']:.4f}", f"{row['bytes']:,}")
        tables.append(sub)
    return tables


def _noise_table(out: dict[str, float], title: str) -> list:
    from rich.table import Table

    from blt.evaluation.suites import noise_increase

    table = Table(title=f"{title}: BPB under noise (per original byte)")
    for col, justify in (("text", "left"), ("BPB", "right"), ("increase over clean", "right")):
        table.add_column(col, justify=justify)
    table.add_row("clean", f"{out['clean']:.4f}", "")
    for name, delta in noise_increase(out).items():
        table.add_row(name, f"{out[name]:.4f}", f"{delta:+.4f} ({delta / out['clean']:+.1%})")
    return [table]


def _chars_table(out: dict[str, dict[str, Any]], title: str) -> list:
    from rich.table import Table

    table = Table(title=f"{title}: character-level tasks (multiple choice by log-likelihood)")
    for col, justify in (("task", "left"), ("accuracy", "right"), ("chance", "right"), ("n", "right")):
        table.add_column(col, justify=justify)
    for task, row in out.items():
        acc = "-" if row["accuracy"] is None else f"{row['accuracy']:.3f}"
        chance = "-" if row["chance"] is None else f"{row['chance']:.3f}"
        table.add_row(task, acc, chance, str(row["n"]))
    return [table]
