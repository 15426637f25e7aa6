"""Benchmark (not a test): bytes/s of every builtin patcher, and its cost next to the training step it serves.

    python bench/bench_patching.py [--quick] [--threads 1] [--repeats 5] [--json out.json]

For each registered builtin patcher (default settings; entropy kinds with their shipped model):
bytes/s patching a batch ``[B, N]`` at once and one row at a time (``patch(row)`` per row), with
``include_next_token=True`` as training uses it. The training steps it serves (forward, backward,
AdamW step) are timed in the same process, alternating with the patchers:

- ``default``: the default experiment (``load_experiment({})``: its batch size and sequence length);
- ``benchmark``: the CPU benchmark configuration of ``bench_train.py`` (2 x 2048 bytes).

Cost fraction = patching time of that step's batch / (training step time + patching time).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def train_step_fn(experiment: dict, tokens: torch.Tensor, lengths: torch.Tensor):
    import blt

    torch.manual_seed(0)
    model = blt.build_model(experiment, training=True).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        common.loss_of(model(tokens, lengths), tokens).backward()
        opt.step()

    return step


def run(quick: bool, repeats: int, threads: int) -> dict:
    import blt
    from blt.experiment import load_experiment

    torch.set_num_threads(threads)
    registry = blt.make_registry(autoload=False)
    default_exp, _ = load_experiment({})
    B, N = default_exp.data.batch_size, default_exp.data.seq_len
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_train import CONFIGS

    bench_cfg = dict(CONFIGS["benchmark"])
    if quick:
        bench_cfg["seq_len"] = 1024
    batches = {"default": common.text_batch(B, N, registry.build_patcher({"kind": "space"})),
               "benchmark": common.text_batch(bench_cfg["batch"], bench_cfg["seq_len"])}
    steps = {"default": train_step_fn({}, *batches["default"]),
             "benchmark": train_step_fn(common.experiment(bench_cfg), *batches["benchmark"])}
    results: dict = {"patchers": {}, "steps": {}}
    fns = {f"step/{name}": fn for name, fn in steps.items()}
    patchers = {}
    for kind in sorted(registry.patchers):
        patcher = registry.build_patcher({"kind": kind})
        patchers[kind] = patcher
        for name, (tokens, _) in batches.items():
            fns[f"{kind}/batch/{name}"] = (lambda p, t: lambda: p.patch(t, include_next_token=True))(patcher, tokens)
            fns[f"{kind}/rows/{name}"] = (lambda p, t: lambda: [p.patch(row, include_next_token=True) for row in t])(patcher, tokens)
    times = common.alternate(fns, repeats)
    med = {k: common.median(v) for k, v in times.items()}
    for name, (tokens, lengths) in batches.items():
        results["steps"][name] = {"batch": list(tokens.shape), "median_s": med[f"step/{name}"],
                                  "bytes_per_s": tokens.numel() / med[f"step/{name}"]}
    for kind, patcher in patchers.items():
        entry = {"incremental": bool(getattr(patcher, "incremental", False))}
        for name, (tokens, _) in batches.items():
            n = tokens.numel()
            t_step = med[f"step/{name}"]
            tb, tr = med[f"{kind}/batch/{name}"], med[f"{kind}/rows/{name}"]
            lengths = patcher.patch(tokens, include_next_token=True).lengths
            entry[name] = {"batch_bytes_per_s": n / tb, "row_bytes_per_s": n / tr,
                           "avg_patch_size": float((tokens.shape[1] + 1) * tokens.shape[0] / (lengths > 0).sum()),
                           "fraction_of_step_batch": tb / (t_step + tb), "fraction_of_step_rows": tr / (t_step + tr)}
        results["patchers"][kind] = entry
    results["threads"], results["quick"] = threads, quick
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=str, default=None)
    args = parser.parse_args(argv)
    result = run(args.quick, args.repeats, args.threads)
    result["machine"] = common.machine()
    for name, s in result["steps"].items():
        print(f"train step {name:9s} batch {s['batch']}: {s['median_s']:.3f} s ({s['bytes_per_s']:,.0f} B/s)")
    for kind, e in result["patchers"].items():
        for name in result["steps"]:
            r = e[name]
            print(f"{kind:12s} {name:9s} batch {r['batch_bytes_per_s']:12,.0f} B/s  rows {r['row_bytes_per_s']:12,.0f} B/s  "
                  f"avg patch {r['avg_patch_size']:.2f}  share of step {r['fraction_of_step_batch']:.1%} (batch), "
                  f"{r['fraction_of_step_rows']:.1%} (rows)")
    if args.json:
        common.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
