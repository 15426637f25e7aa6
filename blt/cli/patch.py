"""``blt patch``: show how a patcher cuts a text, in alternating colours, with patch statistics.

Average patch size is bytes per patch over the text's bytes only: the BOS/EOS tokens that
``blt.tokens.encode`` adds (patches of their own in the dynamic kinds) are not counted, neither
as bytes nor as patches, so every scheme is measured on the same bytes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

NAME = "patch"
HELP = "show a text's patches (alternating colours), patch count and average patch size"
SPARKS = "▁▂▃▄▅▆▇█"
STYLES = ("black on bright_cyan", "black on bright_yellow")
SPECIAL_NAMES = {0: "⟨pad⟩", 1: "⟨bos⟩", 2: "⟨eos⟩", 3: "⟨bpe⟩"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", help="text file to patch, '-' for stdin (default: the shipped sample text)")
    parser.add_argument("--text", help="patch this text instead of a file")
    parser.add_argument("--kind", help="patcher kind (default: the config's, else 'space')")
    parser.add_argument("--config", metavar="FILE", help="TOML/JSON: an experiment file ([patcher], [plugins]) or one patcher table")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a patcher field; VALUE is read as TOML (e.g. patch_size=6), else as a string")
    parser.add_argument("--all-kinds", action="store_true",
                        help="show every registered kind with its default config (plus --set fields it has); kinds that cannot build are skipped with a note")
    parser.add_argument("--show-entropy", action="store_true", help="print a per-byte sparkline of the patcher's scores (entropy kinds)")
    parser.add_argument("--plot", metavar="FILE.png", help="with --show-entropy: also plot the scores and patch starts to FILE.png")
    parser.add_argument("--separator", metavar="S", help="draw S between patches (default: '│' when the output has no colours)")
    parser.add_argument("--max-bytes", type=int, default=4096, metavar="N", help="patch at most the first N bytes (default 4096)")
    parser.add_argument("--run", metavar="RUN", help="a trained run (or export/checkpoint) whose model chooses its own "
                        "boundaries (e.g. [model] kind = \"dynamic_chunking\"): show its chunks per stage; --kind, if "
                        "given, must name the run's model kind; --show-entropy shows the boundary probabilities")


def read_input(args: argparse.Namespace) -> tuple[bytes, str]:
    """The bytes to patch and a label for them."""
    from blt.core.errors import InputError

    if args.text is not None and args.file is not None:
        raise InputError("give either a FILE or --text, not both")
    if args.text is not None:
        return args.text.encode("utf-8", errors="surrogateescape"), "--text"
    if args.file == "-":
        return sys.stdin.buffer.read(), "stdin"
    if args.file is None:
        from blt.corpus import sample_text_path

        path = sample_text_path()
    else:
        path = Path(args.file)
    if not path.is_file():
        raise InputError(f"input file not found: {path}")
    try:
        return path.read_bytes(), str(path)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


def patcher_configs(args: argparse.Namespace) -> tuple[Any, list[dict[str, Any]]]:
    """The registry and the patcher tables to build (one, or one per kind with --all-kinds)."""
    from blt.core.config import read_config_file
    from blt.cli.overrides import parse_overrides
    from blt.core.registry import registry_for

    data = read_config_file(args.config) if args.config else {}
    registry = registry_for(data)
    overrides = parse_overrides(args.overrides)
    if args.all_kinds:
        tables = []
        for kind, spec in registry.patchers.items():
            fields = set(spec.config_type.__struct_fields__)
            tables.append({"kind": kind, **{k: v for k, v in overrides.items() if k in fields}})
        return registry, tables
    table = dict(data.get("patcher", data if "kind" in data else {}))
    if args.kind and args.kind != table.get("kind"):
        table = {"kind": args.kind}  # fields of another kind rarely fit this one
    table.setdefault("kind", "space")
    return registry, [{**table, **overrides}]


def render_patches(tokens: list[int], lengths: list[int], separator: str = "") -> Any:
    """A rich ``Text``: each patch in alternating colours, ``separator`` between patches;
    multi-byte characters drawn once, in the patch that holds their first byte; invalid bytes as
    ``\\xNN``; newlines as ``↵`` + newline."""
    from rich.text import Text

    patch_of = [i for i, n in enumerate(lengths) for _ in range(n)]
    out = Text()
    pos = prev = 0
    while pos < len(tokens):
        if separator and pos and patch_of[pos] != patch_of[prev]:
            out.append(separator)
        prev = pos
        tok = tokens[pos]
        if tok < 4:
            out.append(SPECIAL_NAMES[tok], style=STYLES[patch_of[pos] % 2])
            pos += 1
            continue
        end = pos
        while end < len(tokens) and tokens[end] >= 4 and end - pos < 4:
            end += 1
        chunk = bytes(t - 4 for t in tokens[pos:end]).decode("utf-8", errors="surrogateescape")
        char = chunk[0]
        size = len(char.encode("utf-8", errors="surrogateescape"))
        if "\udc80" <= char <= "\udcff":
            shown = f"\\x{ord(char) - 0xDC00:02x}"
        elif char == "\n":
            shown = "↵\n"
        elif char == "\t":
            shown = "⇥"
        else:
            shown = char if char.isprintable() else f"\\x{ord(char):02x}"
        out.append(shown, style=STYLES[patch_of[pos] % 2])
        pos += size
    return out


def statistics(tokens: list[int], lengths: list[int]) -> tuple[int, int, float]:
    """(all patches, patches holding a byte, bytes per such patch); see the module docstring."""
    byte_patches, pos = 0, 0
    for n in lengths:
        byte_patches += any(t >= 4 for t in tokens[pos : pos + n])
        pos += n
    n_bytes = sum(1 for t in tokens if t >= 4)
    return len(lengths), byte_patches, n_bytes / byte_patches if byte_patches else 0.0


def sparkline_block(tokens: list[int], scores: list[float], lengths: list[int], width: int = 64) -> str:
    """Rows of: one glyph per token (ASCII or ``·``), its score as ``▁..█``, ``|`` at patch starts."""
    lo, hi = min(scores), max(scores)
    span = (hi - lo) or 1.0
    starts = {sum(lengths[:i]) for i in range(len(lengths))}
    glyphs = "".join(chr(t - 4) if 32 < t - 4 < 127 else ("␣" if t == 36 else "·") for t in tokens)
    sparks = "".join(SPARKS[min(7, int((s - lo) / span * 8))] for s in scores)
    marks = "".join("|" if i in starts else " " for i in range(len(tokens)))
    lines = [f"scores: min {lo:.3f}, max {hi:.3f}"]
    for i in range(0, len(tokens), width):
        lines += [glyphs[i : i + width], sparks[i : i + width], marks[i : i + width], ""]
    return "\n".join(lines)


def plot_scores(path: str, scores: list[float], lengths: list[int], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from blt.core.errors import InputError

    fig, ax = plt.subplots(figsize=(max(6.0, len(scores) / 40), 3))
    ax.plot(range(len(scores)), scores, lw=0.8)
    for start in [sum(lengths[:i]) for i in range(len(lengths))]:
        ax.axvline(start, color="tab:red", lw=0.3, alpha=0.6)
    ax.set(xlabel="position", ylabel="score", title=title)
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as exc:
        raise InputError(f"cannot write plot to {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)


def show_learned(args: argparse.Namespace, console: Any, tokens_t: Any, label: str) -> int:
    """``--run``: the boundaries a trained model chooses (``model.learned_patches``), stage by stage."""
    import torch
    from rich.table import Table

    from blt.core.errors import InputError
    from blt.train.weights import load_trained

    if args.all_kinds:
        raise InputError("--run shows the run's own boundaries; it cannot be combined with --all-kinds")
    config, _registry, _patcher, model = load_trained(args.run)
    kind = config.model.kind
    if args.kind is not None and args.kind != kind:
        raise InputError(f"--kind {args.kind!r} does not match the run's model kind {kind!r}")
    learned = getattr(model, "learned_patches", None)
    if not callable(learned):
        raise InputError(f"the run's model ({kind!r}) does not choose its own boundaries (it reads the patcher's); "
                         "drop --run to show a patcher's patches")
    tokens = tokens_t.tolist()
    with torch.no_grad():
        stages = learned(tokens_t)
    summary = Table(title=f"{label}: {len(tokens) - 2} bytes, chunks of {args.run}")
    for col in ("stage", "patches", "byte patches", "bytes/patch"):
        summary.add_column(col)
    separator = args.separator if args.separator is not None else ("" if console.color_system else "│")
    for name, lengths, scores in stages:
        total, byte_patches, avg = statistics(tokens, lengths)
        console.rule(f"[bold]{name}[/]")
        console.print(render_patches(tokens, lengths, separator))
        summary.add_row(name, str(total), str(byte_patches), f"{avg:.2f}")
        if args.show_entropy:
            console.print(sparkline_block(tokens, scores, lengths))
    console.print(summary)
    return 0


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    import blt.tokens
    from blt.core.errors import BltError, InputError

    if args.max_bytes < 1:
        raise InputError(f"--max-bytes must be >= 1, got {args.max_bytes}")
    console = Console(highlight=False)
    raw, label = read_input(args)
    if len(raw) > args.max_bytes:
        console.print(f"[dim]({label}: showing the first {args.max_bytes} of {len(raw)} bytes; see --max-bytes)[/]")
        raw = raw[: args.max_bytes]
    tokens_t = blt.tokens.encode(raw)
    tokens = tokens_t.tolist()
    if args.run is not None:
        return show_learned(args, console, tokens_t, label)
    registry, tables = patcher_configs(args)
    summary = Table(title=f"{label}: {len(raw)} bytes")
    for col in ("kind", "patches", "byte patches", "bytes/patch", "note"):
        summary.add_column(col)
    for table in tables:
        try:
            patcher = registry.build_patcher(table)
            patches = patcher.patch(tokens_t)
        except BltError as exc:
            if not args.all_kinds:
                raise
            summary.add_row(table["kind"], "-", "-", "-", f"skipped: {exc}")
            continue
        lengths = [int(n) for n in patches.lengths.tolist() if n]
        total, byte_patches, avg = statistics(tokens, lengths)
        console.rule(f"[bold]{table['kind']}[/] {table}")
        separator = args.separator if args.separator is not None else ("" if console.color_system else "│")
        console.print(render_patches(tokens, lengths, separator))
        summary.add_row(table["kind"], str(total), str(byte_patches), f"{avg:.2f}", "")
        if args.show_entropy:
            if patches.scores is None:
                console.print(f"[dim]({table['kind']} gives no per-position scores)[/]")
            else:
                scores = [float(s) for s in patches.scores.reshape(-1).tolist()]
                console.print(sparkline_block(tokens, scores, lengths))
                if args.plot:
                    plot_scores(args.plot, scores, lengths, f"{label}: {table['kind']}")
                    console.print(f"wrote {args.plot}")
    console.print(summary)
    return 0
