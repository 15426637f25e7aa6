"""The floor of cached generation: our per-byte step next to a byte-level Llama of the local decoder's size.

In one process, on a randomly initialised model of the tiny experiment's shape, greedy, EOS
ignored (weights do not change the cost):

- ours: ``blt.generate.generate`` (cached: incremental patching, KV caches everywhere), bytes per
  second and time per byte at each length, and the raw step (``CachedGenerator.step`` + argmax);
- the floor: transformers' ``LlamaForCausalLM`` with vocabulary 260 and the width, depth, heads
  and FFN width of our local decoder, generating bytes with its KV cache, by the faster of
  ``model.generate`` and a manual loop over ``past_key_values`` (both measured, the faster kept);
- where our step's time goes: encoder step, patcher stepper, global step (amortised per byte:
  run only when a patch closes), decoder step, head and choice (timers around each part);
- cached vs no-cache at 1 KiB (no-cache is O(T^2): measured once, at the largest length <= 1024).

Runs alternate and each time is the median of ``--repeats`` rounds; a ratio is the median of the
rounds' own ratios (runs of one round ran back to back). Not a test.

    PYTHONPATH=. python bench/bench_generate_floor.py --threads 1 [--lengths 256 1024 4096] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import blt
from blt.generate import generate
from blt.generate.cached import CachedGenerator
from blt.tokens import encode

PROMPT = "In the beginning God created the heaven and the earth. "


def llama_like(model) -> torch.nn.Module:
    """A LlamaForCausalLM with our local decoder's width, depth, heads and FFN width, vocabulary 260."""
    from transformers import LlamaConfig, LlamaForCausalLM

    dec = model.decoder
    layer = dec.layers[0]
    d = dec.norm.weight.numel()
    cfg = LlamaConfig(vocab_size=260, hidden_size=d, intermediate_size=dec.config.ffn_dim, num_hidden_layers=len(dec.layers),
                      num_attention_heads=layer.self_attn.heads, num_key_value_heads=layer.self_attn.kv_heads,
                      max_position_embeddings=16384, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
                      pad_token_id=0)
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval()


def hf_generate(hf, prompt_1N: torch.Tensor, n: int) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        hf.generate(prompt_1N, attention_mask=torch.ones_like(prompt_1N), max_new_tokens=n, min_new_tokens=n,
                    do_sample=False, pad_token_id=0)
    return time.perf_counter() - start


def hf_loop(hf, prompt_1N: torch.Tensor, n: int) -> float:
    from transformers import DynamicCache

    start = time.perf_counter()
    with torch.inference_mode():
        cache = DynamicCache()
        out = hf(prompt_1N, past_key_values=cache, use_cache=True)
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        for _ in range(n - 1):
            out = hf(token, past_key_values=cache, use_cache=True)
            token = out.logits[:, -1].argmax(-1, keepdim=True)
    return time.perf_counter() - start


def ours(model, patcher, n: int, cache: bool = True) -> float:
    start = time.perf_counter()
    generate(model, patcher, [PROMPT], max_new_bytes=n, stop_at_eos=False, cache=cache)
    return time.perf_counter() - start


class Timed:
    """Wraps ``obj.name`` to add its wall time to ``totals[label]``."""

    def __init__(self, totals: dict, label: str, obj, name: str) -> None:
        inner = getattr(obj, name)

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            out = inner(*args, **kwargs)
            totals[label] = totals.get(label, 0.0) + time.perf_counter() - t0
            return out

        setattr(obj, name, timed)


def step_shares(model, patcher, n: int) -> dict:
    """Seconds per byte of each part of our step over an n-byte greedy generation."""
    ids = encode(PROMPT, bos=True, eos=False).tolist()
    total = len(ids) + n
    totals: dict[str, float] = {}
    with torch.inference_mode():
        gen = CachedGenerator(model, patcher, 1, total)
        Timed(totals, "encoder step", gen.encoder, "step")
        Timed(totals, "patcher stepper", gen.starts, "step_list")
        Timed(totals, "global step (incl. patch encoding)", gen.encoder, "close")
        Timed(totals, "global step (incl. patch encoding)", gen.glob, "close")
        Timed(totals, "global step (incl. patch encoding)", gen.decoder, "push")
        Timed(totals, "decoder step", gen.decoder, "step")
        token = ids[0]
        start = time.perf_counter()
        for t in range(total):
            logits = gen.step(torch.tensor([token]))
            token = ids[t + 1] if t + 1 < len(ids) else int(logits[0].argmax())
        whole = time.perf_counter() - start
    totals["rest (head, bookkeeping, choice)"] = whole - sum(totals.values())
    return {"per_byte_ms": whole / total * 1e3, "shares": {k: v / whole for k, v in totals.items()},
            "patches": gen.patches_closed()[0], "positions": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="blt/configs/experiments/tiny.toml")
    parser.add_argument("--patcher", default="space")
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--nocache-at", type=int, default=1024, help="length of the no-cache runs, alternating with cached ones (0: skip)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    registry = blt.make_registry(autoload=False)
    torch.manual_seed(0)
    model = blt.build_model(args.config, registry=registry).eval()
    patcher = registry.build_patcher({"kind": args.patcher, "max_patch_length": 16} if args.patcher == "space" else {"kind": args.patcher})
    hf = llama_like(model)
    prompt_1N = torch.tensor([[t for t in encode(PROMPT, bos=True, eos=False).tolist()]])
    ours(model, patcher, 16)
    hf_generate(hf, prompt_1N, 16)
    hf_loop(hf, prompt_1N, 16)
    print(f"model {args.config}, patcher {args.patcher}, {args.threads} thread(s), prompt {len(PROMPT)} bytes; "
          f"floor: LlamaForCausalLM d={hf.config.hidden_size} layers={hf.config.num_hidden_layers} "
          f"heads={hf.config.num_attention_heads} ffn={hf.config.intermediate_size} vocab 260")
    results = {"config": args.config, "patcher": args.patcher, "threads": args.threads, "lengths": {}}
    print(f"{'bytes':>6} {'ours ms/B':>10} {'llama.generate':>15} {'llama loop':>11} {'floor':>8} {'ours/floor':>11}")
    for n in args.lengths:
        rounds = {"ours": [], "hf_generate": [], "hf_loop": []}
        for _ in range(args.repeats):  # alternate, so load changes hit every side alike
            rounds["ours"].append(ours(model, patcher, n))
            rounds["hf_generate"].append(hf_generate(hf, prompt_1N, n))
            rounds["hf_loop"].append(hf_loop(hf, prompt_1N, n))
        med = {k: statistics.median(v) / n * 1e3 for k, v in rounds.items()}
        floor = min(med["hf_generate"], med["hf_loop"])
        # the ratio of each round (its runs ran back to back), then the median: robust to load changes
        ratio = statistics.median(o / min(g, l) for o, g, l in zip(rounds["ours"], rounds["hf_generate"], rounds["hf_loop"]))
        results["lengths"][n] = {**{f"{k}_ms_per_byte": v for k, v in med.items()}, "ours_over_floor": ratio}
        print(f"{n:>6} {med['ours']:>10.3f} {med['hf_generate']:>15.3f} {med['hf_loop']:>11.3f} {floor:>8.3f} "
              f"{ratio:>10.2f}x")
    if args.nocache_at:
        n, pairs = args.nocache_at, []
        for _ in range(args.repeats):  # alternate; each round's ratio from its own back-to-back runs
            pairs.append((ours(model, patcher, n), ours(model, patcher, n, cache=False)))
        cached, nocache = statistics.median(c for c, _ in pairs), statistics.median(nc for _, nc in pairs)
        speedups = [nc / c for c, nc in pairs]
        results["nocache"] = {"bytes": n, "cached_s": cached, "nocache_s": nocache, "speedup": statistics.median(speedups),
                              "rounds": speedups}
        print(f"\ncached vs no-cache at {n} bytes: cached {cached:.2f} s, no-cache {nocache:.2f} s (medians), cached "
              f"x{statistics.median(speedups):.1f} faster (median of rounds: {', '.join(f'{r:.1f}' for r in speedups)})")
    n = 1024 if 1024 in args.lengths else args.lengths[0]
    shares = step_shares(model, patcher, n)
    results["step"] = shares
    print(f"\nour step over {shares['positions']} positions ({shares['patches']} patches closed): {shares['per_byte_ms']:.3f} ms per byte")
    for label, share in shares["shares"].items():
        print(f"  {label:<36} {share * 100:5.1f}%")
    print(json.dumps(results))
    if args.json:
        from blt.core.atomic import atomic_write_json

        atomic_write_json(args.json, results)


if __name__ == "__main__":
    main()
