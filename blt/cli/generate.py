"""``blt generate CHECKPOINT --prompt ...``: continue prompts with a trained or converted BLT."""

from __future__ import annotations

import argparse

NAME = "generate"
HELP = "generate text from a checkpoint (greedy or sampled; cached incremental patching by default)"
DESCRIPTION = (
    "Continue each --prompt with the BLT in CHECKPOINT (a run directory, its export/ directory, or a "
    "Hugging Face BLT checkpoint). By default patches are decided on the fly and every part of the "
    "model keeps a cache, so each new byte costs the same; --no-cache recomputes everything per byte "
    "(the reference's method; slow, but works with any patcher, bpe included). Temperature 0 is greedy."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="run directory (RUN or RUN/export) or Hugging Face BLT checkpoint directory")
    parser.add_argument("--prompt", action="append", required=True, help="text to continue (repeat for a batch)")
    parser.add_argument("--max-bytes", type=int, default=256, help="most bytes to generate per prompt (default 256)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default); > 0 samples")
    parser.add_argument("--top-k", type=int, default=None, help="sample only among the K most likely bytes")
    parser.add_argument("--top-p", type=float, default=None, help="sample only from the nucleus of mass P, 0 < P <= 1")
    parser.add_argument("--seed", type=int, default=None, help="random seed for sampling (each prompt uses it alone)")
    parser.add_argument("--no-eos-stop", dest="stop_at_eos", action="store_false",
                        help="keep generating after an end-of-sequence token")
    parser.add_argument("--cache", action=argparse.BooleanOptionalAction, default=True,
                        help="cached incremental generation (default); --no-cache recomputes everything per byte")
    parser.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True,
                        help="print bytes as they are generated (default); --no-stream prints each result at the end")
    parser.add_argument("--device", default=None, help="torch device (default: cpu)")


def run(args: argparse.Namespace) -> int:
    import sys

    from blt.core.errors import InputError
    from blt.generate import generate, load_generator
    from blt.generate.sampling import SamplingParams

    params = SamplingParams(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    if args.max_bytes < 1:
        raise InputError(f"--max-bytes must be >= 1, got {args.max_bytes}")
    from blt.generate.prompts import prompt_tokens

    loaded = load_generator(args.checkpoint, device=args.device)
    prompt_tokens(args.prompt, loaded.context, loaded.patcher)  # every prompt checked before any output
    out = sys.stdout.buffer
    options = dict(max_new_bytes=args.max_bytes, temperature=params.temperature, top_k=params.top_k, top_p=params.top_p,
                   seed=params.seed, stop_at_eos=args.stop_at_eos, cache=args.cache, context=loaded.context)

    if args.stream:
        def emit(row: int, data: bytes) -> None:
            out.write(data)
            out.flush()

        # Rows are independent, so prompts run one after another and each streams as it goes.
        for prompt in args.prompt:
            out.write(prompt.encode("utf-8", errors="surrogateescape"))
            out.flush()
            generate(loaded.model, loaded.patcher, [prompt], stream=emit, **options)
            out.write(b"\n")
            out.flush()
        return 0
    results = generate(loaded.model, loaded.patcher, args.prompt, **options)
    for prompt, result in zip(args.prompt, results):
        out.write(prompt.encode("utf-8", errors="surrogateescape") + result + b"\n")
    out.flush()
    return 0
