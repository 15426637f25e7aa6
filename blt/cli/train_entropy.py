"""``blt train-entropy CONFIG``: train a transformer or CNN entropy model and save it (safetensors + JSON)."""

from __future__ import annotations

import argparse

NAME = "train-entropy"
HELP = "train an entropy model (transformer or CNN byte LM) for entropy patching"
DESCRIPTION = (
    "Train an entropy model from a TOML recipe: [model] kind = \"transformer\" | \"cnn\" plus sizes; "
    "[train] steps, lr, batch_size, seq_len, eval_every ...; [corpus] files = [...] (default: the built-in "
    "corpus); out = \"path.safetensors\". Shows a progress bar with periodic held-out BPB. "
    "Recipes of the shipped models: blt/resources/entropy/*.toml."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="recipe TOML (see blt/resources/entropy/transformer-tiny.toml)")
    parser.add_argument("--out", help="override `out`: where to write the .safetensors (a .json sidecar is written next to it)")
    parser.add_argument("--steps", type=int, help="override [train] steps")
    parser.add_argument("--seed", type=int, help="override [train] seed")
    parser.add_argument("--threads", type=int, help="override [train] threads (torch CPU threads)")
    parser.add_argument("--files", nargs="+", metavar="FILE", help="override [corpus] files (text or JSONL)")
    parser.add_argument("--no-progress", action="store_true", help="print held-out BPB lines instead of a progress bar")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from blt.core.config import convert, read_config_file
    from blt.entropy.train import EntropyTrainRecipe, train_and_save

    data = read_config_file(args.config)
    if args.out:
        data["out"] = args.out
    train = {k: v for k, v in (("steps", args.steps), ("seed", args.seed), ("threads", args.threads)) if v is not None}
    if train:
        data["train"] = {**data.get("train", {}), **train}
    if args.files:
        data["corpus"] = {**data.get("corpus", {}), "files": args.files}
    recipe = convert(data, EntropyTrainRecipe, "$")
    console = Console(highlight=False)
    console.print(f"training a {recipe.model.kind} entropy model for {recipe.train.steps} steps -> {recipe.out}")
    path, metrics = train_and_save(recipe, progress=not args.no_progress, log=console.print)
    console.print(
        f"saved {path} (+ {path.with_suffix('.json').name}): held-out {metrics['final_heldout_bpb']:.3f} bits/byte "
        f"after {metrics['train_seconds']:.0f} s of training on {metrics['threads']} threads"
    )
    return 0
