"""Benchmark (not a test): step time vs sequence length and vs patch size, split by component.

    python bench/bench_scaling.py [--quick] [--threads 1] [--repeats 3] [--json out.json]

Model: the CPU benchmark configuration of ``bench_train.py`` (window 512), one row, sdpa.
- length sweep: 256, 512, ..., 8192 bytes with fixed 4-byte patches (``strided`` lengths; BOS alone);
- patch sweep: 2048 bytes with fixed patches of 4, 6 and 8 bytes.
Each point: median time of forward + backward; the forward's split by component (local encoder,
global transformer, local decoder, head + loss) measured with module forward hooks; and the
FLOP split from ``blt.flops`` for comparison. Linearity: for each doubling, t(2N) / t(N) (2.0 is
linear); the target is <= 2.3 (linear within 15%).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


class ComponentTimer:
    """Wall time of each component's forward via pre/post forward hooks (CPU: synchronous)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.totals: dict[str, float] = {}
        self._start: dict[str, float] = {}
        for name in ("encoder", "global_transformer", "decoder"):
            module = getattr(model, name)
            module.register_forward_pre_hook(self._pre(name))
            module.register_forward_hook(self._post(name))

    def _pre(self, name):
        def hook(module, args):
            self._start[name] = time.perf_counter()
        return hook

    def _post(self, name):
        def hook(module, args, out):
            self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - self._start[name]
        return hook


def measure(model: torch.nn.Module, timer: ComponentTimer, cfg: dict, n: int, patch: int, repeats: int) -> dict:
    tokens, _ = common.text_batch(1, n)
    lengths = common.strided_lengths(1, n, patch)
    step = common.ours_step(model, tokens, lengths)
    step()  # warm-up
    times, fwd_times, splits = [], [], []
    for _ in range(repeats):
        timer.totals.clear()
        t0 = time.perf_counter()
        model.zero_grad(set_to_none=True)
        loss = common.loss_of(model(tokens, lengths), tokens)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        times.append(t2 - t0)
        fwd_times.append(t1 - t0)
        split = dict(timer.totals)
        split["head_and_loss"] = (t1 - t0) - sum(split.values())
        splits.append(split)
    i = sorted(range(repeats), key=lambda j: times[j])[repeats // 2]
    from blt.experiment import build_model

    n_patches = int((lengths > 0).sum())
    flops = build_model(common.experiment(cfg)).flops(n, n / max(n_patches - 1, 1))  # P = 1 + N / a
    total_flops = sum(flops.values())
    return {"seq_len": n, "patch": patch, "step_s": times[i], "forward_s": fwd_times[i],
            "bytes_per_s": n / times[i], "forward_split_s": splits[i],
            "flop_split": {k: v / total_flops for k, v in flops.items()}, "train_flops": 3 * total_flops}


def run(quick: bool, repeats: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    from bench_train import CONFIGS

    cfg = dict(CONFIGS["benchmark"], batch=1)
    model = common.build_ours(cfg).train()
    timer = ComponentTimer(model)
    lengths_sweep = [256, 512, 1024, 2048, 4096] if quick else [256, 512, 1024, 2048, 4096, 8192]
    by_length = [measure(model, timer, cfg, n, 4, repeats) for n in lengths_sweep]
    doublings = [b["step_s"] / a["step_s"] for a, b in zip(by_length, by_length[1:])]
    by_patch = [measure(model, timer, cfg, 1024 if quick else 2048, p, repeats) for p in (4, 6, 8)]
    return {"config": cfg, "threads": threads, "quick": quick, "by_length": by_length, "doubling_ratios": doublings,
            "max_doubling_ratio": max(doublings), "by_patch": by_patch}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=str, default=None)
    args = parser.parse_args(argv)
    result = run(args.quick, args.repeats, args.threads)
    result["machine"] = common.machine()
    for row in result["by_length"] + result["by_patch"]:
        split = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in row["forward_split_s"].items())
        print(f"N {row['seq_len']:5d} patch {row['patch']}: step {row['step_s']:.3f} s ({row['bytes_per_s']:,.0f} B/s); "
              f"forward {row['forward_s']:.3f} s = {split}")
    print("doubling ratios", [round(r, 2) for r in result["doubling_ratios"]])
    if args.json:
        common.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
