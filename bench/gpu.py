"""GPU benchmark (H100/H200 class; not a test): the CPU measurements in bf16 per attention backend.

    python bench/gpu.py [OUT_JSON]          # default: $OUT/gpu_bench.json, else bench/results/gpu_bench.json
    python bench/gpu.py --smoke             # tiny sizes on whatever device there is (checks the code paths)

Sections (each guarded: a failure or an unavailable backend is recorded with its reason, never fatal;
a section is skipped once the time budget, 180 s by default, is spent):

- ``matmul_peak``: median FLOP/s of an 8192^3 bf16 matmul (the MFU denominator);
- ``train``: forward + cross-entropy + backward of ours per backend (sdpa, flex, flash) vs
  ``transformers.BltForCausalLM`` (sdpa) on the same configuration, batch and patch lengths (the
  same work; weights are each model's own init here, conversion is checked on CPU); bytes/s, MFU;
  a backend that cannot serve the model's masks is recorded with build_model's refusal;
- ``attention``: each backend's kernel alone on each mask kind it declares (local sliding window,
  patch causal), forward + backward, so ``flash`` is measured even where the full model refuses it;
- ``scaling``: ours (sdpa, and flex) step time from 1024 to 16384 bytes at 4-byte patches;
- ``memory``: ``torch.cuda.max_memory_allocated`` of a step by sequence length;
- ``patching``: bytes/s of the entropy patchers on the device, batch and single-row;
- ``generation``: cached vs no-cache bytes/s for 128 new bytes.

Timing: CUDA events around each call after warm-up, median of repeats; steps alternate between
compared models. Weights are bf16 (``model.to(torch.bfloat16)``), logits float32.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

BUDGET_S = float(os.environ.get("BLT_GPU_BENCH_BUDGET_S", "180"))
T0 = time.perf_counter()

GPU_CONFIG = {
    "d_local": 512, "local_heads": 8, "local_ffn": 1536, "encoder_layers": 1, "decoder_layers": 3,
    "d_global": 1024, "global_heads": 16, "global_layers": 6, "global_ffn": 2816,
    "window": 512, "k": 2, "hash_sizes": [3, 4, 5, 6, 7, 8], "hash_buckets": 16384,
    "batch": 8, "seq_len": 4096,
}
SMOKE_CONFIG = dict(GPU_CONFIG, d_local=64, local_heads=2, local_ffn=128, d_global=128, global_heads=2, global_layers=2,
                    global_ffn=256, decoder_layers=1, hash_buckets=256, batch=2, seq_len=256, window=64)


def left() -> float:
    return BUDGET_S - (time.perf_counter() - T0)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_call(fn: Callable[[], Any]) -> float:
    """Seconds of one call: CUDA events on a GPU, perf_counter otherwise."""
    if torch.cuda.is_available():
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def alternate(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 2) -> dict[str, list[float]]:
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync()
    out: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            out[name].append(time_call(fns[name]))
    return out


def guarded(results: dict, name: str, fn: Callable[[], Any], min_left: float = 20.0) -> None:
    if left() < min_left:
        results[name] = {"skipped": f"time budget spent ({BUDGET_S:.0f} s)"}
        print(f"[{name}] skipped: budget", flush=True)
        return
    t = time.perf_counter()
    try:
        results[name] = fn()
    except Exception as exc:  # record and go on: one broken section must not lose the others
        results[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-2000:]}
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    print(f"[{name}] {time.perf_counter() - t:.1f} s: {json.dumps(results[name], default=str)[:600]}", flush=True)


def backend_reasons() -> dict[str, str | None]:
    import blt

    reg = blt.make_registry(autoload=False)
    return {name: spec.is_available() for name, spec in reg.attention.items()}


def matmul_peak(device: torch.device, n: int) -> float:
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    ts = alternate({"mm": lambda: a @ b}, 10)["mm"]
    return 2 * n**3 / statistics.median(ts)


def build(cfg: dict, attention: str, device: torch.device) -> torch.nn.Module:
    import blt
    import common

    torch.manual_seed(0)
    with torch.device(device):  # initialise on the device: CPU init of large models is slow
        model = blt.build_model(common.experiment(cfg, attention), training=True, device=device)
    return model.to(torch.bfloat16).train()


def batch(cfg: dict, device: torch.device, patch: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    import common

    tokens, lengths = common.text_batch(cfg["batch"], cfg["seq_len"])
    if patch is not None:
        lengths = common.strided_lengths(cfg["batch"], cfg["seq_len"], patch)
    return tokens.to(device), lengths.to(device)


def step_fn(model: torch.nn.Module, tokens: torch.Tensor, lengths: torch.Tensor, hf: bool = False) -> Callable[[], None]:
    import common

    def step() -> None:
        model.zero_grad(set_to_none=True)
        if hf:
            logits = model(input_ids=tokens, patch_lengths=lengths, use_cache=False).logits
        else:
            logits = model(tokens, lengths)
        common.loss_of(logits, tokens).backward()
    return step


def section_train(cfg: dict, device: torch.device, peak: float | None, repeats: int) -> dict:
    import common

    tokens, lengths = batch(cfg, device)
    flops = common.train_flops(cfg, cfg["seq_len"], lengths.cpu())
    out: dict[str, Any] = {"config": cfg, "train_flops_per_step": flops,
                           "avg_patch_size": float(tokens.numel() / (lengths > 0).sum().item()), "backends": {}}
    fns: dict[str, Callable[[], None]] = {}
    models: dict[str, Any] = {}
    for name in ("sdpa", "flex", "flash"):
        try:
            models[name] = build(cfg, name, device)
            fns[name] = step_fn(models[name], tokens, lengths)
            fns[name]()  # compile / first call outside the timing
        except Exception as exc:
            out["backends"][name] = {"skipped": f"{type(exc).__name__}: {exc}"}
            models.pop(name, None)
            fns.pop(name, None)
    try:
        import transformers

        torch.manual_seed(0)
        with torch.device(device):
            hf = transformers.BltForCausalLM(common.hf_config(cfg))
        hf = hf.to(device=device, dtype=torch.bfloat16).train()
        fns["hf"] = step_fn(hf, tokens, lengths, hf=True)
    except Exception as exc:
        out["backends"]["hf"] = {"skipped": f"{type(exc).__name__}: {exc}"}
    times = alternate(fns, repeats)
    for name, ts in times.items():
        t = statistics.median(ts)
        out["backends"][name] = {"median_step_s": t, "step_s": ts, "bytes_per_s": tokens.numel() / t,
                                 "mfu": (flops / t / peak) if peak else None}
    if "hf" in times:
        for name in times:
            if name != "hf":
                ratios = [h / o for h, o in zip(times["hf"], times[name])]
                out["backends"][name]["speedup_vs_hf"] = statistics.median(ratios)
    return out


def section_attention(device: torch.device, smoke: bool, repeats: int) -> dict:
    import blt
    import common
    from blt.attention import masks
    from blt.attention.backend import bind
    from blt.model.layout import PatchLayout

    reg = blt.make_registry(autoload=False)
    B, N, H, D = (2, 256, 2, 32) if smoke else (8, 4096, 8, 64)
    tokens, lengths = common.text_batch(B, N)
    layout = PatchLayout.from_lengths(tokens.to(device), lengths.to(device))
    descs = {"local_block_causal": masks.local_block_causal(layout, 512 if not smoke else 64),
             "patch_causal": masks.patch_causal(layout, False),
             "byte_to_patch": masks.byte_to_patch(layout, 2), "patch_to_byte": masks.patch_to_byte(layout, 2)}
    out: dict[str, Any] = {"shape": {"B": B, "N": N, "H": H, "D": D}}
    for backend_name, spec in reg.attention.items():
        reason = spec.is_available()
        if reason is not None:
            out[backend_name] = {"skipped": reason}
            continue
        backend = spec.build(spec.config_type())
        res: dict[str, Any] = {}
        for kind, desc in descs.items():
            if kind not in spec.mask_kinds:
                res[kind] = {"skipped": "mask kind not declared by the backend"}
                continue
            if backend_name == "eager" and kind == "local_block_causal" and not smoke:
                res[kind] = {"skipped": "dense O(N^2) oracle, too large"}
                continue
            try:
                _, Q, K = desc.shape
                q, k, v = (torch.randn(B, H, n, D, device=device, dtype=torch.bfloat16, requires_grad=True) for n in (Q, K, K))
                attend = bind(backend, desc)

                def fb() -> None:
                    attend(q, k, v).float().sum().backward()

                ts = alternate({"x": fb}, repeats)["x"]
                res[kind] = {"median_fwd_bwd_s": statistics.median(ts)}
            except Exception as exc:
                res[kind] = {"error": f"{type(exc).__name__}: {exc}"}
        out[backend_name] = res
    return out


def section_scaling(cfg: dict, device: torch.device, smoke: bool) -> dict:
    lengths = [128, 256, 512] if smoke else [1024, 2048, 4096, 8192, 16384]
    out: dict[str, Any] = {}
    for name in ("sdpa", "flex"):
        rows = []
        try:
            model = build(dict(cfg, batch=1), name, device)
        except Exception as exc:
            out[name] = {"skipped": f"{type(exc).__name__}: {exc}"}
            continue
        for n in lengths:
            if left() < 30:
                rows.append({"seq_len": n, "skipped": "budget"})
                continue
            try:
                tokens, lens = batch(dict(cfg, batch=1, seq_len=n), device, patch=4)
                ts = alternate({"s": step_fn(model, tokens, lens)}, 3)["s"]
                rows.append({"seq_len": n, "median_step_s": statistics.median(ts), "bytes_per_s": n / statistics.median(ts)})
            except Exception as exc:
                rows.append({"seq_len": n, "error": f"{type(exc).__name__}: {exc}"})
        out[name] = rows
        del model
    return out


def section_memory(cfg: dict, device: torch.device, smoke: bool) -> dict:
    if device.type != "cuda":
        return {"skipped": "needs CUDA (torch.cuda.max_memory_allocated)"}
    model = build(dict(cfg, batch=1), "sdpa", device)
    rows = []
    for n in ([128, 256] if smoke else [1024, 2048, 4096, 8192, 16384]):
        tokens, lens = batch(dict(cfg, batch=1, seq_len=n), device, patch=4)
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step_fn(model, tokens, lens)()
        torch.cuda.synchronize()
        rows.append({"seq_len": n, "step_peak_mib": (torch.cuda.max_memory_allocated() - base) / 2**20})
        model.zero_grad(set_to_none=True)
    return {"points": rows}


def section_patching(device: torch.device, smoke: bool) -> dict:
    import blt
    import common

    reg = blt.make_registry(autoload=False)
    B, N = (2, 256) if smoke else (8, 4096)
    tokens, _ = common.text_batch(B, N)
    tokens = tokens.to(device)
    out: dict[str, Any] = {}
    for kind in sorted(reg.patchers):
        try:
            patcher = reg.build_patcher({"kind": kind})
            if hasattr(patcher, "to"):
                patcher.to(device)
            ts = alternate({"batch": lambda: patcher.patch(tokens, include_next_token=True),
                            "rows": lambda: [patcher.patch(row, include_next_token=True) for row in tokens]}, 3, warmup=1)
            out[kind] = {"batch_bytes_per_s": tokens.numel() / statistics.median(ts["batch"]),
                         "row_bytes_per_s": tokens.numel() / statistics.median(ts["rows"])}
        except Exception as exc:
            out[kind] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def section_generation(cfg: dict, device: torch.device, smoke: bool) -> dict:
    from blt.generate import generate

    import blt

    model = build(cfg, "sdpa", device).eval()
    patcher = blt.make_registry(autoload=False).build_patcher({"kind": "space"})
    n = 32 if smoke else 128
    prompts = ["The quick brown fox jumps over the lazy dog. " * 2] * 4
    out: dict[str, Any] = {"new_bytes": n, "rows": len(prompts)}
    for cache in (True, False):
        generate(model, patcher, prompts, max_new_bytes=8, cache=cache, stop_at_eos=False)
        t = time_call(lambda: generate(model, patcher, prompts, max_new_bytes=n, cache=cache, stop_at_eos=False))
        out["cached" if cache else "nocache"] = {"seconds": t, "bytes_per_s": n * len(prompts) / t}
    # issue 15's batch target on the GPU: 8 ragged prompts against one, cached (rows close patches
    # at different steps), where a step is launch-bound and rows cost little extra arithmetic
    ragged = [prompts[0][: len(prompts[0]) - 3 * i] for i in range(8)]
    one = time_call(lambda: generate(model, patcher, ragged[:1], max_new_bytes=n, stop_at_eos=False))
    many = time_call(lambda: generate(model, patcher, ragged, max_new_bytes=n, stop_at_eos=False))
    out["batch"] = {"rows": len(ragged), "one_bytes_per_s": n / one, "batch_bytes_per_s": n * len(ragged) / many,
                    "ratio": len(ragged) * one / many}
    return out


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    smoke = "--smoke" in args
    args = [a for a in args if a != "--smoke"]
    if args:
        out_path = Path(args[0])
    elif os.environ.get("OUT"):
        out_path = Path(os.environ["OUT"]) / "gpu_bench.json"
    else:
        out_path = HERE / "results" / "gpu_bench.json"
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not smoke:
        print("no CUDA device: run with --smoke to check the code paths on CPU", file=sys.stderr)
    cfg = SMOKE_CONFIG if smoke else GPU_CONFIG
    import common

    results: dict[str, Any] = {"machine": common.machine(), "device": str(device), "smoke": smoke, "budget_s": BUDGET_S,
                               "dtype": "bfloat16"}
    if device.type == "cuda":
        results["gpu"] = torch.cuda.get_device_name()
        results["cuda"] = torch.version.cuda
        torch.backends.cuda.matmul.allow_tf32 = True
    guarded(results, "backends", backend_reasons, min_left=0)
    guarded(results, "matmul_peak", lambda: {"flops": matmul_peak(device, 1024 if smoke else 8192)}, min_left=0)
    peak = results["matmul_peak"].get("flops") if isinstance(results["matmul_peak"], dict) else None
    repeats = 3 if smoke else 10
    guarded(results, "train", lambda: section_train(cfg, device, peak, repeats), min_left=60)
    guarded(results, "attention", lambda: section_attention(device, smoke, repeats))
    guarded(results, "scaling", lambda: section_scaling(cfg, device, smoke), min_left=40)
    guarded(results, "memory", lambda: section_memory(cfg, device, smoke))
    guarded(results, "patching", lambda: section_patching(device, smoke))
    guarded(results, "generation", lambda: section_generation(cfg, device, smoke))
    results["elapsed_s"] = time.perf_counter() - T0
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {out_path} ({results['elapsed_s']:.0f} s)")


if __name__ == "__main__":
    main()
