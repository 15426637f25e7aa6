"""``blt eval CHECKPOINT [FILES...]``: held-out bits per byte, bytes/s and average patch size."""

from __future__ import annotations

import argparse

NAME = "eval"
HELP = "evaluate a trained run, export or checkpoint: BPB, bytes/s, average patch size"
DESCRIPTION = (
    "Evaluate CHECKPOINT (a run directory, its export/ directory or a checkpoints/step_* directory) on "
    "FILES (text or JSON Lines files, or directories), or on the run's held-out split when no FILES are given."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="run directory, export directory or checkpoint directory")
    parser.add_argument("files", nargs="*", help="documents to evaluate on (default: the run's held-out split)")
    parser.add_argument("--max-bytes", type=int, default=None, help="stop after this many target bytes")
    parser.add_argument("--seq-len", type=int, default=None, help="row length in bytes (default: the run's)")
    parser.add_argument("--text-field", default=None, help="JSON Lines text field (default: the run's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args: argparse.Namespace) -> int:
    import json

    import msgspec
    from rich.console import Console
    from rich.table import Table

    from blt.data import open_store
    from blt.data.sources import expand_files
    from blt.train.evaluate import evaluate
    from blt.train.setup import param_count
    from blt.train.weights import load_trained

    config, _registry, patcher, model = load_trained(args.checkpoint)
    data = config.data
    changes = {}
    if args.files:
        expand_files(args.files)  # missing paths fail here, with the path
        changes["heldout"] = list(args.files)
    if args.seq_len:
        changes["seq_len"] = args.seq_len
    if args.text_field:
        changes["text_field"] = args.text_field
    data = msgspec.structs.replace(data, **changes)
    store = open_store(data, "heldout", patcher, config.patcher)
    import torch

    result = evaluate(model, store, seq_len=data.seq_len, batch_size=data.batch_size, max_bytes=args.max_bytes,
                      device=torch.device("cpu"), dtype="fp32")
    from blt.train.setup import measure_avg_patch_size, measure_bytes_per_position

    avg = measure_avg_patch_size(store) * measure_bytes_per_position(store)  # bytes per patch
    out = {"bpb": result["bpb"], "bytes": result["bytes"], "bytes_per_s": result["bytes_per_s"],
           "avg_patch_size": avg, "params": param_count(model), "documents": store.n_docs}
    console = Console(highlight=False, soft_wrap=True)
    if args.json:
        console.print(json.dumps(out))
        return 0
    table = Table(title=f"{args.checkpoint} on {'the held-out split' if not args.files else ', '.join(args.files)}")
    for col in ("BPB", "target bytes", "bytes/s", "avg patch", "params", "documents"):
        table.add_column(col, justify="right")
    table.add_row(f"{out['bpb']:.4f}", f"{out['bytes']:,}", f"{out['bytes_per_s']:,.0f}", f"{avg:.2f}",
                  f"{out['params']:,}", f"{out['documents']:,}")
    console.print(table)
    return 0
