"""``blt calibrate``: the entropy threshold that gives a target average patch size on a corpus."""

from __future__ import annotations

import argparse

NAME = "calibrate"
HELP = "find the entropy threshold for a target average patch size (bytes per patch)"
DESCRIPTION = (
    "Compute entropies once over a corpus (the built-in train split by default, or text/JSONL files), then "
    "bisect the threshold of the global (e > θ) or relative (e[p-1] - e[p-2] > θ) rule until the average patch "
    "size matches --target. Prints the achieved size and its spread across documents; --write puts the value "
    "into a config's [patcher] table."
)
KINDS = {"entropy": "transformer", "cnn_entropy": "cnn"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", choices=sorted(KINDS), default="entropy", help="patcher kind (selects the model type; default entropy)")
    parser.add_argument("--target", type=float, default=4.5, help="target average patch size in bytes (default 4.5)")
    parser.add_argument("--rule", choices=("global", "relative"), default="global", help="threshold rule (default global)")
    parser.add_argument("--model", metavar="PATH", help="entropy model .safetensors (default: the shipped tiny model of the kind)")
    parser.add_argument("--files", nargs="+", metavar="FILE", help="corpus files, text or JSONL (default: the built-in corpus)")
    parser.add_argument("--split", choices=("train", "heldout", "all"), default="train", help="corpus split (default train)")
    parser.add_argument("--max-docs", type=int, metavar="N", help="use only the first N documents (faster)")
    parser.add_argument("--max-patch-length", type=int, metavar="M", help="calibrate with this max_patch_length split applied")
    parser.add_argument("--batch-size", type=int, default=16, help="documents per entropy batch (default 16)")
    parser.add_argument("--write", metavar="CONFIG.toml", help="write the threshold into this config's [patcher] table (created if missing)")


def run(args: argparse.Namespace) -> int:
    import time

    from rich.console import Console

    from blt.core.errors import InputError
    from blt.entropy.calibrate import calibrate_threshold, document_entropies
    from blt.entropy.config_file import update_patcher_table
    from blt.entropy.corpus import split_texts
    from blt.entropy.io import load_entropy_model, shipped_model_path

    console = Console(highlight=False)
    if args.target < 1:
        raise InputError(f"--target must be >= 1 byte per patch, got {args.target}")
    texts = split_texts(args.files, args.split)
    texts = texts[: args.max_docs] if args.max_docs else texts
    if not texts:
        raise InputError("corpus is empty: no documents to calibrate on (check --files / --split / --max-docs)")
    model_path = args.model or shipped_model_path(KINDS[args.kind])
    model = load_entropy_model(model_path, expect_kind=KINDS[args.kind])
    t0 = time.perf_counter()
    with console.status(f"computing entropies of {len(texts)} documents ({sum(len(t.encode()) for t in texts):,} bytes)"):
        doc_e = document_entropies(model, texts, batch_size=args.batch_size)
    seconds = time.perf_counter() - t0
    cal = calibrate_threshold(doc_e, args.target, rule=args.rule, max_patch_length=args.max_patch_length)
    spread = cal.spread()
    field = "threshold" if args.rule == "global" else "relative_threshold"
    console.print(f"model: {model_path}  ({len(texts)} documents, {cal.tokens:,} tokens, entropies in {seconds:.1f} s)")
    console.print(f"{args.kind} {field} = {cal.threshold!r}")
    console.print(f"achieved {cal.achieved:.3f} bytes/patch (target {cal.target}; {cal.patches:,} patches); achievable "
                  f"{cal.achievable[0]:.2f}..{cal.achievable[1]:.2f}")
    console.print(f"per-document average: min {spread['min']:.2f}, median {spread['median']:.2f}, max {spread['max']:.2f}, std {spread['std']:.2f}")
    if args.write:
        values = {"kind": args.kind, field: cal.threshold}
        if args.model:
            values["model_path"] = str(args.model)
        if args.max_patch_length:
            values["max_patch_length"] = args.max_patch_length
        other = "relative_threshold" if field == "threshold" else "threshold"
        update_patcher_table(args.write, values, remove=(other,) + (() if args.model else ("model_path",)))
        console.print(f"wrote {field} into the [patcher] table of {args.write}", markup=False)
    return 0
