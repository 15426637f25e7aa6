"""``blt env``: what this machine offers blt (versions, devices, attention backends)."""

from __future__ import annotations

import argparse

NAME = "env"
HELP = "show versions, devices and which attention backends can run here"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def collect() -> dict:
    import importlib.metadata as md
    import os
    import platform

    import torch

    import blt

    def version(dist: str) -> str:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return "not installed"

    registry = blt.make_registry()
    backends = {}
    for name, spec in registry.attention.items():
        reason = spec.is_available()
        backends[name] = "available" if reason is None else f"unavailable: {reason}"
    return {
        "blt-lab": blt.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "bf16_on_device": bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported()),
        **{pkg: version(pkg) for pkg in ("pluggy", "msgspec", "attrs", "hypothesis", "transformers", "flash-attn", "tokenizers")},
        "attention_backends": backends,
        "components": {family: len(registry.family(family)) for family in ("patchers", "encoders", "decoders", "attention")},
    }


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        import json

        print(json.dumps(info, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="blt environment", show_header=False)
    for key, value in info.items():
        if isinstance(value, dict):
            value = "\n".join(f"{k}: {v}" for k, v in value.items())
        table.add_row(key, str(value))
    Console().print(table)
    return 0
