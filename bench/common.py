"""Shared pieces of the benchmark scripts (not a test module).

- :func:`machine` describes the machine (CPU model, cores, torch version and threads).
- :data:`CPU_CONFIG` is the CPU benchmark configuration; :func:`hf_config` turns it into a
  ``transformers.BltConfig``; :func:`make_pair` builds the HF model and converts its weights into
  ours (``blt.interop.from_transformers``), so both run the same weights.
- :func:`text_batch` cuts real text from the built-in corpus and patches it with the ``space``
  patcher capped at 7 bytes (average patch about 4.5 bytes on the held-out split); the same lengths go to both models.
- :func:`alternate` times several callables in alternation and returns per-callable medians.
- :func:`matmul_peak` measures the large fp32 matmul throughput in this process (the MFU denominator).

Every figure is a ratio taken in one process; absolute times are printed for context only.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The CPU benchmark configuration: widths where the matmuls reach the machine's peak, one
# 2048-byte row (4 windows of 512), average patch ~4.5 bytes.
CPU_CONFIG: dict[str, Any] = {
    "d_local": 512, "local_heads": 8, "local_ffn": 1536, "encoder_layers": 1, "decoder_layers": 2,
    "d_global": 1024, "global_heads": 16, "global_layers": 4, "global_ffn": 2816,
    "window": 512, "k": 2, "hash_sizes": [3, 4, 5, 6, 7, 8], "hash_buckets": 4096,
    "batch": 1, "seq_len": 2048,
}
QUICK_CONFIG: dict[str, Any] = dict(CPU_CONFIG, seq_len=1024)


def machine() -> dict[str, Any]:
    """CPU model, logical cores, torch version and intra-op threads."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import transformers
        tv = transformers.__version__
    except ImportError:
        tv = None
    return {"cpu": cpu, "logical_cores": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "transformers": tv, "platform": platform.platform()}


def hf_config(cfg: dict[str, Any]) -> Any:
    """A ``transformers.BltConfig`` for ``cfg`` (no patcher: patch lengths are passed by keyword)."""
    import transformers

    local = dict(hidden_size=cfg["d_local"], num_attention_heads=cfg["local_heads"], intermediate_size=cfg["local_ffn"],
                 rope_parameters={"rope_type": "default", "rope_theta": 500000.0})
    return transformers.BltConfig(
        vocab_size=260, patch_in_forward=False, patching_mode="entropy", local_attention_window_len=cfg["window"],
        cross_attn_k=cfg["k"], encoder_hash_byte_group_size=list(cfg["hash_sizes"]),
        encoder_hash_byte_group_vocab=cfg["hash_buckets"], encoder_hash_byte_group_nb_functions=1,
        encoder_config=dict(local, num_hidden_layers=cfg["encoder_layers"], cross_attn_all_layers=False),
        decoder_config=dict(local, num_hidden_layers=cfg["decoder_layers"], cross_attn_all_layers=True,
                            hidden_size_global=cfg["d_global"]),
        global_config=dict(hidden_size=cfg["d_global"], num_attention_heads=cfg["global_heads"],
                           num_hidden_layers=cfg["global_layers"], intermediate_size=cfg["global_ffn"],
                           rope_parameters={"rope_type": "default", "rope_theta": 500000.0}),
        attn_implementation="sdpa", use_cache=False, tie_word_embeddings=False,
    )


def experiment(cfg: dict[str, Any], attention: str = "sdpa") -> dict[str, Any]:
    """Our experiment config equivalent to :func:`hf_config` (what the interop converter produces)."""
    local = {"heads": cfg["local_heads"], "ffn_dim": cfg["local_ffn"], "window": cfg["window"], "k": cfg["k"],
             "cross_heads": cfg["local_heads"]}
    return {
        "model": {"d_local": cfg["d_local"], "d_global": cfg["d_global"], "global_layers": cfg["global_layers"],
                  "global_heads": cfg["global_heads"], "global_ffn": cfg["global_ffn"], "rope_theta": 500000.0,
                  "block_documents": False},
        "encoder": dict(local, kind="cross_attention", layers=cfg["encoder_layers"], hash_sizes=list(cfg["hash_sizes"]),
                        hash_functions=1, hash_buckets=cfg["hash_buckets"], cross_all_layers=False),
        "decoder": dict(local, kind="cross_attention", layers=cfg["decoder_layers"], cross_all_layers=True),
        "attention": {"kind": attention},
    }


def build_ours(cfg: dict[str, Any], attention: str = "sdpa", seed: int = 0) -> torch.nn.Module:
    import blt

    torch.manual_seed(seed)
    return blt.build_model(experiment(cfg, attention), training=True)


def make_pair(cfg: dict[str, Any], seed: int = 0) -> tuple[Any, torch.nn.Module, str]:
    """``(hf_model, our_model, how)``: ours converted from the HF weights when interop is there."""
    import transformers

    torch.manual_seed(seed)
    hf = transformers.BltForCausalLM(hf_config(cfg)).float()
    try:
        from blt.interop import from_transformers

        ours, _ = from_transformers(hf, attention="sdpa")
        how = "blt.interop.from_transformers (converted weights)"
    except Exception as exc:  # interop missing or refusing: same config, own weights
        ours = build_ours(cfg, seed=seed)
        how = f"equivalent experiment config, own init (interop unavailable: {type(exc).__name__}: {exc})"
    hf.train()
    ours.train()
    return hf, ours, how


_STREAM: torch.Tensor | None = None


def text_stream() -> torch.Tensor:
    """Token ids of the held-out split of the built-in corpus (documents joined with EOS)."""
    global _STREAM
    if _STREAM is None:
        from blt.corpus import load_builtin_corpus
        from blt.tokens import encode

        _STREAM = torch.cat([encode(d.text, bos=False, eos=True) for d in load_builtin_corpus("heldout")])
    return _STREAM


def text_batch(batch: int, seq_len: int, patcher: Any = None, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(tokens [B, N], lengths [B, P])``: BOS + text bytes, lengths from ``patcher`` (default ``space``)."""
    from blt.tokens import BOS_ID

    stream = text_stream()
    rows = []
    for b in range(batch):
        start = (offset + b * seq_len) % max(1, stream.numel() - seq_len)
        body = stream[start : start + seq_len - 1]
        body = torch.where(body == 2, torch.full_like(body, 4 + ord("\n")), body)  # one document per row
        rows.append(torch.cat([torch.tensor([BOS_ID]), body]))
    tokens = torch.stack(rows)
    if patcher is None:
        patcher = default_patcher("space", max_patch_length=7)
    lengths = patcher.patch(tokens, include_next_token=True).lengths
    return tokens, lengths


def default_patcher(kind: str = "space", **fields: Any) -> Any:
    import blt

    return blt.make_registry(autoload=False).build_patcher({"kind": kind, **fields})


def strided_lengths(batch: int, seq_len: int, size: int) -> torch.Tensor:
    """Fixed patches of ``size`` (BOS alone first), each row summing to N + 1."""
    total = seq_len + 1
    rest = total - 1
    lengths = [1] + [size] * (rest // size) + ([rest % size] if rest % size else [])
    return torch.tensor(lengths).expand(batch, -1).contiguous()


def loss_of(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), tokens[:, 1:].reshape(-1))


def ours_step(model: torch.nn.Module, tokens: torch.Tensor, lengths: torch.Tensor) -> Callable[[], None]:
    """Forward + backward of our model (gradients dropped after each step)."""
    def step() -> None:
        model.zero_grad(set_to_none=True)
        loss_of(model(tokens, lengths), tokens).backward()
    return step


def hf_step(model: Any, tokens: torch.Tensor, lengths: torch.Tensor) -> Callable[[], None]:
    """Forward + backward of ``BltForCausalLM`` on the same batch and lengths."""
    def step() -> None:
        model.zero_grad(set_to_none=True)
        logits = model(input_ids=tokens, patch_lengths=lengths, use_cache=False).logits
        loss_of(logits, tokens).backward()
    return step


def timeit(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def alternate(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Run each callable ``warmup`` times, then ``repeats`` rounds in alternation (order rotated)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            times[name].append(timeit(fns[name]))
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def paired_ratios(num: list[float], den: list[float]) -> list[float]:
    return [a / b for a, b in zip(num, den)]


def matmul_peak(n: int = 2048, repeats: int = 7) -> float:
    """Median FLOP/s of an ``n x n @ n x n`` fp32 matmul in this process."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    ts = [timeit(lambda: a @ b) for _ in range(repeats)]
    return 2 * n**3 / median(ts)


def train_flops(cfg_or_experiment: dict[str, Any], n_bytes: int, lengths: torch.Tensor) -> float:
    """Training FLOPs of one step (3 x forward, blt.flops) summed over the rows of ``lengths``."""
    from blt.experiment import build_model

    exp = cfg_or_experiment if "model" in cfg_or_experiment else experiment(cfg_or_experiment)
    model = build_model(exp)
    total = 0.0
    for row in lengths:
        n_patches = int((row > 0).sum())  # the model's formula takes P = 1 + N / a
        total += sum(model.flops(n_bytes, n_bytes / max(n_patches - 1, 1)).values())
    return 3 * total


KERNEL_OPS = {"matmul": ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm"),
              "attention": ("aten::_scaled_dot_product_flash_attention_for_cpu",
                            "aten::_scaled_dot_product_flash_attention_for_cpu_backward")}


def kernel_time(step: Callable[[], Any], steps: int = 2) -> dict[str, float]:
    """Seconds per step spent inside the matmul and fused-attention kernels (torch.profiler self time).

    Their sum is the step's floor with these kernels: whatever else the step does (norms, SwiGLU,
    RoPE, gathers, copies) comes on top. ``profiled_step_s`` is the step under the profiler.
    """
    from torch.profiler import ProfilerActivity, profile

    step()
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    wall = (time.perf_counter() - t0) / steps
    totals = {name: 0.0 for name in KERNEL_OPS}
    for event in prof.key_averages():
        for name, ops in KERNEL_OPS.items():
            if event.key in ops:
                totals[name] += event.self_cpu_time_total / 1e6 / steps
    return dict(totals, profiled_step_s=wall)


def write_json(path: str | Path, data: Any) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2, default=str))


def fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"
