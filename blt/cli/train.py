"""``blt train CONFIG``: train one experiment (resumes from its latest checkpoint by default)."""

from __future__ import annotations

import argparse

NAME = "train"
HELP = "train an experiment from a TOML config (torchrun-ready; resumes by default)"
DESCRIPTION = (
    "Train the experiment in CONFIG. Checkpoints go to OUT/checkpoints; rerunning the same command "
    "resumes from the latest one and continues exactly. Start several processes with "
    "`torchrun --nproc-per-node N -m blt train CONFIG` for DDP or FSDP2 ([run] parallel)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment TOML/JSON file (e.g. blt/configs/experiments/tiny.toml)")
    parser.add_argument("--out", help="run directory (default: [run] out_dir)")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                        help="continue from OUT's latest checkpoint (default); --no-resume starts afresh")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field, e.g. --set train.steps=100 --set patcher.kind=space (repeatable)")


def load_with_overrides(path: str, overrides: list[str]):
    from blt.core.config import read_config_file
    from blt.cli.overrides import parse_overrides
    from blt.experiment import load_experiment, with_overrides

    data = with_overrides(read_config_file(path), parse_overrides(overrides))
    return load_experiment(data)


def run(args: argparse.Namespace) -> int:
    import os

    from rich.console import Console

    from blt import parallel
    from blt.train.trainer import train

    config, registry = load_with_overrides(args.config, args.overrides)
    try:
        record = train(config, registry, out_dir=args.out, resume=args.resume)
        if os.environ.get("RANK", "0") == "0":
            Console(highlight=False, soft_wrap=True).print(
                f"done: {record['steps']} steps, loss {record['loss']:.4f}, held-out BPB {record['eval_bpb']:.4f}, "
                f"{record['train_flops']:.3g} training FLOPs, {record['bytes_per_s']:,.0f} bytes/s")
    finally:
        parallel.shutdown()
    return 0
