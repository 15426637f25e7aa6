"""Benchmark (not a test): a training step of ours vs ``transformers.BltForCausalLM``, and MFU.

    python bench/bench_train.py [--config benchmark|wide] [--quick] [--threads 1] [--repeats 5] [--json out.json]

Both models hold the same weights (ours converted from the HF model with
``blt.interop.from_transformers``), see the same batch and the same patch lengths, run in float32
with the same threads, and do the same work per step: forward, next-byte cross-entropy, backward
(no optimizer step). Steps alternate between the two models; the reported ratio is the median of
the per-round ratios. MFU = model FLOPs per step (``blt.flops``, training = 3 x forward, attention
counted over allowed pairs) / step time / the median FLOP/s of a 2048^3 fp32 matmul measured in the
same process with the same threads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

# "benchmark": the configuration the targets refer to (local width 256, global 512, 2 x 2048 bytes).
# "wide": wider layers (512 / 1024, 1 x 2048 bytes), where the matmuls are a larger share for both.
CONFIGS = {
    "benchmark": {
        "d_local": 256, "local_heads": 4, "local_ffn": 768, "encoder_layers": 1, "decoder_layers": 3,
        "d_global": 512, "global_heads": 8, "global_layers": 4, "global_ffn": 1536,
        "window": 512, "k": 2, "hash_sizes": [3, 4, 5, 6, 7, 8], "hash_buckets": 4096,
        "batch": 2, "seq_len": 2048,
    },
    "wide": common.CPU_CONFIG,
}


def run(config_name: str, quick: bool, repeats: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    cfg = dict(CONFIGS[config_name])
    if quick:
        cfg["seq_len"] = min(cfg["seq_len"], 1024)
    hf, ours, how = common.make_pair(cfg)
    tokens, lengths = common.text_batch(cfg["batch"], cfg["seq_len"])
    n_bytes = tokens.numel()
    avg_patch = float((tokens.shape[1] + 1) * tokens.shape[0] / (lengths > 0).sum())
    with torch.no_grad():
        ref = hf(input_ids=tokens, patch_lengths=lengths, use_cache=False).logits
        got = ours(tokens, lengths)
        max_diff = float((ref - got).abs().max())
    times = common.alternate({"ours": common.ours_step(ours, tokens, lengths),
                              "hf": common.hf_step(hf, tokens, lengths)}, repeats)
    kernels = {"ours": common.kernel_time(common.ours_step(ours, tokens, lengths)),
               "hf": common.kernel_time(common.hf_step(hf, tokens, lengths))}
    peak = common.matmul_peak()
    flops = common.train_flops(cfg, tokens.shape[1], lengths)
    t_ours, t_hf = common.median(times["ours"]), common.median(times["hf"])
    ratios = common.paired_ratios(times["hf"], times["ours"])
    return {
        "config_name": config_name, "config": cfg, "quick": quick, "threads": threads, "weights": how,
        "bytes_per_step": n_bytes, "avg_patch_size": avg_patch, "max_abs_logit_diff": max_diff,
        "step_s": {"ours": times["ours"], "hf": times["hf"]},
        "median_step_s": {"ours": t_ours, "hf": t_hf},
        "bytes_per_s": {"ours": n_bytes / t_ours, "hf": n_bytes / t_hf},
        "speedup_median_of_ratios": common.median(ratios), "speedup_ratios": ratios,
        "train_flops_per_step": flops, "matmul_peak_flops": peak,
        "mfu": {"ours": flops / t_ours / peak, "hf": flops / t_hf / peak},
        # Time inside matmul + fused-attention kernels per step (profiled), and HF's step over ours:
        # the speedup a step made of nothing but those kernels would reach.
        "kernel_s": kernels,
        "kernel_floor_speedup": t_hf / (kernels["ours"]["matmul"] + kernels["ours"]["attention"]),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="benchmark")
    parser.add_argument("--quick", action="store_true", help="1024-byte rows")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=str, default=None)
    args = parser.parse_args(argv)
    result = run(args.config, args.quick, args.repeats, args.threads)
    result["machine"] = common.machine()
    print(f"config {args.config}: {result['bytes_per_step']} bytes/step, avg patch {result['avg_patch_size']:.2f}, "
          f"max |dlogit| {result['max_abs_logit_diff']:.2e}")
    print(f"  ours {result['median_step_s']['ours']:.3f} s/step ({result['bytes_per_s']['ours']:.0f} B/s), "
          f"HF {result['median_step_s']['hf']:.3f} s/step ({result['bytes_per_s']['hf']:.0f} B/s), "
          f"speedup x{result['speedup_median_of_ratios']:.2f}")
    print(f"  matmul peak {result['matmul_peak_flops'] / 1e9:.1f} GFLOP/s; MFU ours {result['mfu']['ours']:.1%}, "
          f"HF {result['mfu']['hf']:.1%}")
    k = result["kernel_s"]
    print(f"  in kernels per step (profiled): ours matmul {k['ours']['matmul']:.3f} s + attention {k['ours']['attention']:.3f} s; "
          f"HF matmul {k['hf']['matmul']:.3f} s + attention {k['hf']['attention']:.3f} s; "
          f"HF step / our kernel time = x{result['kernel_floor_speedup']:.2f}")
    if args.json:
        common.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
