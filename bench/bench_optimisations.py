"""Benchmark (not a test): what each optimisation buys, by switching it off in the same process.

    python bench/bench_optimisations.py [--quick] [--threads 1] [--repeats 3] [--json out.json]

One model (the CPU benchmark configuration of ``bench_train.py``), one batch; forward + backward
timed in alternation under these variants (each re-binds masks per step, as the model does):

- ``all``: everything on (the shipped code);
- ``no_mask_plans``: the sdpa backend falls back to dense ``[B, 1, Q, K]`` boolean masks for every mask
  (the previous behaviour: O(N^2) local attention, dense cross-attention);
- ``no_fused_hash``: hash n-gram embeddings looked up one table at a time (one embedding call,
  and one dense gradient, per table);
- ``no_complex_rope``: RoPE by stacking rotated halves in float32 (the previous implementation);
- ``no_window_kernel_prep``: sliding-window keys/values through ``unfold``'s generic backward and a
  boolean mask converted by the kernel on every call (the first mask-plan version), instead of the
  chunk-sum backward and the once-per-batch additive mask;
- ``no_window_views``: sliding-window keys/values copied into ``[B n, H, W + C, D]`` windows
  (``attend_window(views=False)``, the path other devices take) instead of overlapping views of one
  flat buffer handed to the CPU flash-attention kernel;
- ``no_fused_norm``: RMSNorm through autograd of the eager formula instead of the hand-derived
  backward (``blt.model.rms_norm``);
- ``none``: all of the above off (the code before this work);
- ``compiled``: everything on plus ``[model] compile = true`` (torch.compile'd layer halves; opt-in,
  compiled before timing).

Reported: median step time per variant and the median per-round ratio to ``all``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def _dense_plan(mask):
    return None


def _unfused_hash(self, tokens_BN):
    from blt.model.hash_embedding import ngram_hash

    out, table = None, 0
    for f in range(self.functions):
        for g in self.group_sizes:
            emb = nn.functional.embedding(ngram_hash(tokens_BN, g, f, self.buckets) + table * self.buckets, self.weight)
            out = emb if out is None else out + emb
            table += 1
    return out


def _old_attend_window(q_BHTD, k_BHTD, v_BHTD, plan):
    import torch.nn.functional as F

    B, H, T, D = q_BHTD.shape
    W, C = plan.window, plan.block
    n = plan.allowed_BnCK.shape[1]
    pad = n * C - T
    q_BTHD = q_BHTD.transpose(1, 2)
    q_BnHCD = (F.pad(q_BTHD, (0, 0, 0, 0, 0, pad)) if pad else q_BTHD).reshape(B * n, C, H, D).transpose(1, 2)

    def windows(x_BHTD):
        padded_BLHD = F.pad(x_BHTD.transpose(1, 2), (0, 0, 0, 0, W, pad))
        return padded_BLHD.unfold(1, W + C, C).permute(0, 1, 2, 4, 3).reshape(B * n, H, W + C, D)

    mask = plan.allowed_BnCK.view(B * n, 1, C, W + C)
    o_BnHCD = F.scaled_dot_product_attention(q_BnHCD, windows(k_BHTD), windows(v_BHTD), attn_mask=mask)
    return o_BnHCD.transpose(1, 2).reshape(B, n * C, H, D)[:, :T].transpose(1, 2)


def _stack_rope(x, cos, sin):
    pairs = x.unflatten(-1, (-1, 2))
    rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    return (x.float() * cos + rotated.float() * sin).to(x.dtype)


@contextlib.contextmanager
def switched_off(names: set[str]):
    import blt.model.blocks as blocks
    import blt.plugins.attention.sdpa as sdpa
    from blt.model.hash_embedding import HashNgramEmbedding

    saved = (sdpa.plan_for, HashNgramEmbedding.forward, blocks.apply_rope, sdpa.attend_window, blocks.can_fuse)
    try:
        if "mask_plans" in names:
            sdpa.plan_for = _dense_plan
        if "fused_hash" in names:
            HashNgramEmbedding.forward = _unfused_hash
        if "complex_rope" in names:
            blocks.apply_rope = _stack_rope
        if "window_views" in names:
            sdpa.attend_window = functools.partial(saved[3], views=False)
        if "window_kernel_prep" in names:
            sdpa.attend_window = _old_attend_window
        if "fused_norm" in names:
            blocks.can_fuse = lambda x, weight: False
        yield
    finally:
        sdpa.plan_for, HashNgramEmbedding.forward, blocks.apply_rope, sdpa.attend_window, blocks.can_fuse = saved


VARIANTS = {"all": set(), "no_mask_plans": {"mask_plans"}, "no_fused_hash": {"fused_hash"},
            "no_complex_rope": {"complex_rope"}, "no_window_views": {"window_views"},
            "no_window_kernel_prep": {"window_kernel_prep"}, "no_fused_norm": {"fused_norm"},
            "none": {"mask_plans", "fused_hash", "complex_rope", "window_kernel_prep", "fused_norm"}, "compiled": set()}


def run(quick: bool, repeats: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    from bench_train import CONFIGS

    cfg = dict(CONFIGS["benchmark"])
    if quick:
        cfg["seq_len"] = 1024
    model = common.build_ours(cfg).train()
    tokens, lengths = common.text_batch(cfg["batch"], cfg["seq_len"])
    step = common.ours_step(model, tokens, lengths)

    from blt.model.blocks import TransformerLayer

    layers = [m for m in model.modules() if isinstance(m, TransformerLayer)]

    def variant(name: str, names: set[str]):
        def run_step() -> None:
            for layer in layers:
                layer.compiled = name == "compiled"
            with switched_off(names):
                step()
        return run_step

    times = common.alternate({name: variant(name, names) for name, names in VARIANTS.items()}, repeats)
    out = {"config": cfg, "threads": threads, "variants": {}}
    for name, ts in times.items():
        ratios = common.paired_ratios(ts, times["all"])
        out["variants"][name] = {"median_step_s": common.median(ts), "ratio_to_all": common.median(ratios)}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=str, default=None)
    args = parser.parse_args(argv)
    result = run(args.quick, args.repeats, args.threads)
    result["machine"] = common.machine()
    for name, v in result["variants"].items():
        print(f"{name:16s} {v['median_step_s']:.3f} s/step  x{v['ratio_to_all']:.2f} the time of 'all'")
    if args.json:
        common.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
