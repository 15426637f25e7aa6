"""``blt generate CHECKPOINT --prompt ... | --prompts FILE``: continue prompts with a trained or converted BLT."""

from __future__ import annotations

import argparse
from typing import Any

NAME = "generate"
HELP = "generate text from a checkpoint (greedy or sampled; cached incremental patching by default)"
DESCRIPTION = (
    "Continue each --prompt with the BLT in CHECKPOINT (a run directory, its export/ directory, or a "
    "Hugging Face BLT checkpoint). By default patches are decided on the fly and every part of the "
    "model keeps a cache, so each new byte costs the same; --no-cache recomputes everything per byte "
    "(the reference's method; slow, but works with any patcher, bpe included). Temperature 0 is greedy. "
    "--prompts FILE reads one JSON string per line and writes JSON Lines (one object per prompt, in order: "
    '{"prompt", "output", "new_bytes", "stop", "patches"}) to stdout or --out FILE, generating --batch-size '
    "prompts at a time (greedy: prompts of similar length together, the output still in the file's order)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="run directory (RUN or RUN/export) or Hugging Face BLT checkpoint directory")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", action="append", help="text to continue (repeat for a batch)")
    source.add_argument("--prompts", metavar="FILE", help="file of prompts, one JSON string per line; writes JSON Lines")
    parser.add_argument("--out", metavar="FILE", default=None, help="with --prompts: write the JSON Lines here (atomically)")
    parser.add_argument("--batch-size", type=int, default=8, help="with --prompts: prompts generated together (default 8)")
    parser.add_argument("--max-bytes", type=int, default=256, help="most bytes to generate per prompt (default 256)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default); > 0 samples")
    parser.add_argument("--top-k", type=int, default=None, help="sample only among the K most likely bytes (exactly K)")
    parser.add_argument("--top-p", type=float, default=None, help="sample only from the nucleus of mass P, 0 < P <= 1")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed for sampling; prompt i draws from its own stream (seed, i)")
    parser.add_argument("--no-eos-stop", dest="stop_at_eos", action="store_false",
                        help="keep generating after an end-of-sequence token")
    parser.add_argument("--cache", action=argparse.BooleanOptionalAction, default=True,
                        help="cached incremental generation (default); --no-cache recomputes everything per byte")
    parser.add_argument("--speculative", type=int, default=None, metavar="K",
                        help="exact self-speculative decoding: draft up to K bytes past each patch boundary before "
                             "the global model runs (same greedy output, fewer global calls; prompts run one at a time)")
    parser.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True,
                        help="print bytes as they are generated (default); --no-stream prints each result at the end")
    parser.add_argument("--device", default=None, help="torch device (default: cpu)")


def read_prompts(path: str) -> tuple[list[str], list[int]]:
    """``(prompts, their line numbers)``: one JSON string per line (blank lines skipped); a bad line
    is a one-line error naming it."""
    import json

    from blt.core.errors import InputError

    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise InputError(f"--prompts {path}: cannot read it ({exc.strerror or exc})") from None
    prompts, numbers = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise InputError(f"--prompts {path}, line {number}: not valid JSON ({exc.msg}); give one JSON string per line") from None
        if not isinstance(value, str):
            raise InputError(f"--prompts {path}, line {number}: expected a JSON string, got {type(value).__name__}")
        prompts.append(value)
        numbers.append(number)
    if not prompts:
        raise InputError(f"--prompts {path}: no prompts (one JSON string per line)")
    return prompts, numbers


def run(args: argparse.Namespace) -> int:
    import sys

    from blt.core.errors import InputError
    from blt.generate import load_generator
    from blt.generate.prompts import prompt_tokens
    from blt.generate.sampling import SamplingParams

    params = SamplingParams(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    if args.max_bytes < 1:
        raise InputError(f"--max-bytes must be >= 1, got {args.max_bytes}")
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.speculative is not None and args.speculative < 1:
        raise InputError(f"--speculative must be >= 1 (bytes drafted per round), got {args.speculative}")
    if args.speculative is not None and not args.cache:
        raise InputError("--speculative works on the cache; drop --no-cache or --speculative")
    if args.out is not None and args.prompts is None:
        raise InputError("--out needs --prompts (JSON Lines output); --prompt prints text to stdout")
    if args.prompts is not None:
        prompts, numbers = read_prompts(args.prompts)
    else:
        prompts, numbers = args.prompt, None
    loaded = load_generator(args.checkpoint, device=args.device)
    if numbers is None:
        prompt_tokens(prompts, loaded.context, loaded.patcher)  # every prompt checked before any output
    else:
        for prompt, number in zip(prompts, numbers):
            try:
                prompt_tokens([prompt], loaded.context, loaded.patcher)
            except InputError as exc:
                raise InputError(f"--prompts {args.prompts}, line {number}: {str(exc).replace('prompt 0', 'the prompt', 1)}") from None
    options = dict(max_new_bytes=args.max_bytes, temperature=params.temperature, top_k=params.top_k, top_p=params.top_p,
                   seed=params.seed, stop_at_eos=args.stop_at_eos, cache=args.cache, context=loaded.context,
                   speculative=args.speculative)
    if args.prompts is not None:
        return write_jsonl(loaded, prompts, options, args)
    return write_text(loaded, prompts, options, args.stream, sys.stdout.buffer)


def speculation_line(stats: list[dict]) -> str:
    """One line summing rows' speculative decoding counts (printed on stderr)."""
    total = {key: sum(row[key] for row in stats) for key in ("rounds", "drafted", "accepted", "global_calls", "tokens")}
    acceptance = total["accepted"] / total["drafted"] if total["drafted"] else 0.0
    per_round = total["accepted"] / total["rounds"] if total["rounds"] else 0.0
    calls = total["global_calls"] / total["tokens"] if total["tokens"] else 0.0
    return (f"speculative: {acceptance:.0%} of {total['drafted']} drafted bytes accepted, {per_round:.2f} per round, "
            f"{calls:.3f} global-model calls per generated byte")


def write_text(loaded: Any, prompts: list[str], options: dict, stream: bool, out: Any) -> int:
    import sys

    from blt.generate import generate_detailed

    if stream:
        def emit(row: int, data: bytes) -> None:
            out.write(data)
            out.flush()

        # Prompt i samples from stream (seed, i) however it is batched, so prompts run one after
        # another and each streams as it goes, with the same bytes as --no-stream.
        stats = []
        for i, prompt in enumerate(prompts):
            out.write(prompt.encode("utf-8", errors="surrogateescape"))
            out.flush()
            result = generate_detailed(loaded.model, loaded.patcher, [prompt], stream=emit, row_offset=i, **options)
            stats += result.speculation or []
            out.write(b"\n")
            out.flush()
    else:
        result = generate_detailed(loaded.model, loaded.patcher, prompts, **options)
        for prompt, data in zip(prompts, result.outputs):
            out.write(prompt.encode("utf-8", errors="surrogateescape") + data + b"\n")
        out.flush()
        stats = result.speculation or []
    if stats:
        print(speculation_line(stats), file=sys.stderr)
    return 0


def write_jsonl(loaded: Any, prompts: list[str], options: dict, args: argparse.Namespace) -> int:
    """Generate ``--batch-size`` prompts at a time; one JSON object per prompt, in order."""
    import json
    import sys

    from blt.core.atomic import atomic_write_text
    from blt.generate import generate_detailed
    from blt.tokens import EOS_ID

    order = list(range(len(prompts)))
    if options["temperature"] == 0:
        # greedy rows do not depend on their batch-mates, so prompts of similar length go together: a
        # batch's rows advance in lockstep, and a long prompt beside short ones is read one byte per
        # step past the shortest (sampled rows keep the file's order: prompt i draws from stream (seed, i))
        order.sort(key=lambda i: (-len(prompts[i].encode("utf-8", errors="surrogateescape")), i))
    lines: list[str] = [""] * len(prompts)
    for lo in range(0, len(prompts), args.batch_size):
        rows = order[lo : lo + args.batch_size]
        result = generate_detailed(loaded.model, loaded.patcher, [prompts[i] for i in rows], row_offset=lo, **options)
        for j, i in enumerate(rows):
            prompt = prompts[i]
            tokens, data = result.new_tokens[j], result.outputs[j]
            record = {"prompt": prompt, "output": data.decode("utf-8", errors="replace"), "new_bytes": len(data),
                      "stop": "eos" if args.stop_at_eos and tokens and tokens[-1] == EOS_ID else "length",
                      "patches": result.patches[j] if result.patches is not None else None}
            if result.speculation is not None:
                record["speculation"] = result.speculation[j]
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                record["output_hex"] = data.hex()  # the exact bytes when they are not valid UTF-8
            lines[i] = json.dumps(record, ensure_ascii=False)
    text = "".join(line + "\n" for line in lines)
    if args.out is not None:
        atomic_write_text(args.out, text)
    else:
        sys.stdout.buffer.write(text.encode("utf-8", errors="surrogateescape"))
        sys.stdout.flush()
    return 0
