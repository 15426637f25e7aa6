"""The ``blt`` command line: one module per sub-command, registered from a tuple of module paths.

Each command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``
and imports heavy dependencies inside ``run`` so ``blt --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMANDS: tuple[str, ...] = (
    "blt.cli.plugins",
    "blt.cli.patch",
    "blt.cli.check_plugin",
    "blt.cli.schema",
    "blt.cli.calibrate",
    "blt.cli.train_entropy",
    "blt.cli.train",
    "blt.cli.eval",
    "blt.cli.lm_eval",
    "blt.cli.ablate",
    "blt.cli.generate",
    "blt.cli.export",
    "blt.cli.env",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blt", description="Byte Latent Transformer lab: patch, train, ablate, generate.")
    parser.add_argument("--version", action="version", version=f"blt-lab {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for modname in COMMANDS:
        try:
            module = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name == modname:  # command not built yet in this checkout
                continue
            raise
        p = sub.add_parser(module.NAME, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP))
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _version() -> str:
    from blt import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    from blt.core.errors import BltError

    try:
        return int(args._run(args) or 0)
    except BltError as exc:
        _fail(str(exc))
        return 2
    except KeyboardInterrupt:
        _fail("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug, not bad input: still one line, with how to see more
        if os.environ.get("BLT_DEBUG"):
            raise
        _fail(f"internal error: {type(exc).__name__}: {exc} (set BLT_DEBUG=1 for a traceback)")
        return 1


def _fail(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]error:[/] {escape(message)}", markup=True)
    sys.stderr.flush()
