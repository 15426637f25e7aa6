"""Benchmark (not a test): peak memory of a training step by sequence length.

    python bench/bench_memory.py [--quick] [--threads 1] [--json out.json]

Each point runs in a fresh subprocess (``--point N``): build the benchmark-configuration model
(one row, 4-byte patches), make the batch, then one forward + backward. ``resource.getrusage``'s
``ru_maxrss`` before the step (model, optimizer-free) and after it gives the step's peak resident
memory above the model (tracemalloc does not see torch's allocator). The same is done with the
dense-mask ``eager`` backend for contrast, up to 4096 bytes.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def point(n: int, attention: str, threads: int) -> dict:
    torch.set_num_threads(threads)
    from bench_train import CONFIGS

    cfg = dict(CONFIGS["benchmark"], batch=1)
    model = common.build_ours(cfg, attention=attention).train()
    tokens, _ = common.text_batch(1, n)
    lengths = common.strided_lengths(1, n, 4)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    common.ours_step(model, tokens, lengths)()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seq_len": n, "attention": attention, "maxrss_before_mib": before / 1024, "maxrss_after_mib": after / 1024,
            "step_peak_mib": (after - before) / 1024}


def run(quick: bool, threads: int) -> dict:
    lengths = [256, 512, 1024, 2048, 4096] if quick else [256, 512, 1024, 2048, 4096, 8192]
    points = []
    for attention in ("sdpa", "eager"):
        for n in lengths:
            if attention == "eager" and n > 4096:
                continue
            out = subprocess.run([sys.executable, __file__, "--point", str(n), "--attention", attention,
                                  "--threads", str(threads)], capture_output=True, text=True, check=True)
            points.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {"threads": threads, "quick": quick, "points": points}


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=str, default=None)
    parser.add_argument("--point", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--attention", type=str, default="sdpa", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.point is not None:
        print(json.dumps(point(args.point, args.attention, args.threads)))
        return None
    result = run(args.quick, args.threads)
    result["machine"] = common.machine()
    for p in result["points"]:
        print(f"{p['attention']:5s} N {p['seq_len']:5d}: step peak +{p['step_peak_mib']:.0f} MiB "
              f"(model and batch {p['maxrss_before_mib']:.0f} MiB)")
    if args.json:
        common.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
