"""Held-out bits per byte and throughput for a model on a store of documents."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import torch

from blt import parallel
from blt.data import Batch, eval_batches
from blt.data.store import Store
from blt.tokens import BOS_ID
from blt.train.objective import bits_per_byte


def autocast_for(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when asked (``bf16``) or supported (``auto``); fp32 (no autocast) otherwise."""
    if device.type == "cuda" and (dtype == "bf16" or (dtype == "auto" and torch.cuda.is_bf16_supported())):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and dtype == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def ce_and_count(model: torch.nn.Module, batch: Batch, device: torch.device) -> tuple[torch.Tensor, int]:
    """Sum of target cross-entropy (nats) and the number of target bytes for one rank's batch: the
    model family's contract, ``model(tokens, patch_lengths, targets)``, called through the
    (possibly DDP/FSDP-wrapped) model so parallel hooks run."""
    tokens, lengths, targets = (t.to(device) for t in (batch.tokens, batch.patch_lengths, batch.targets))
    ce, count = model(tokens, lengths, targets)
    return ce, int(count)


@torch.no_grad()
def evaluate(model: torch.nn.Module, store: Store, *, seq_len: int, batch_size: int, max_bytes: int | None,
             device: torch.device, dtype: str = "auto", rank: int = 0, world: int = 1) -> dict[str, Any]:
    """``{"bpb", "ce_nats", "bytes", "bytes_per_s"}`` over held-out rows (summed over ranks).

    A model with ``eval_stats(tokens, patch_lengths) -> {name: float}`` (e.g. the realised
    ``avg_patch_size`` of a model that chooses its own chunks) adds ``"stats"``: each statistic
    averaged over the evaluated batches, weighted by their target bytes (over all ranks). A model
    whose statistics are ratios (bytes per chunk) gives ``eval_counts(tokens, patch_lengths) ->
    {name: float}`` instead: additive counts, summed over every batch and rank, which its
    ``stats_from_counts(sums)`` turns into ``"stats"`` (a byte-weighted mean of per-batch ratios
    n_i / c_i is not sum(n) / sum(c): it overstates bytes per chunk when batches vary)."""
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    ce_total, count = 0.0, 0
    inner = getattr(model, "module", model)  # DDP wraps the model in .module
    counts_of = getattr(inner, "eval_counts", None)
    stats_of = counts_of if callable(counts_of) else getattr(inner, "eval_stats", None)
    stats_sum: dict[str, float] = {}
    try:
        for batch in eval_batches(store, seq_len, batch_size, max_bytes, rank=rank, world=world):
            with autocast_for(device, dtype):
                ce, n = ce_and_count(model, batch, device)
                if callable(stats_of):
                    for key, value in stats_of(batch.tokens.to(device), batch.patch_lengths.to(device)).items():
                        stats_sum[key] = stats_sum.get(key, 0.0) + float(value) * (1 if callable(counts_of) else n)
            ce_total += float(ce)
            count += n
        if callable(stats_of) and not stats_sum:  # no batch on this rank: the keys, with weight 0
            stats_sum = dict.fromkeys(stats_of(torch.tensor([[BOS_ID]], device=device), None), 0.0)
    finally:
        model.train(was_training)
    keys = sorted(stats_sum)
    ce_total, count, *sums = parallel.all_reduce_sum([ce_total, float(count), *(stats_sum[k] for k in keys)], device)
    wall = time.perf_counter() - start
    result = {"bpb": bits_per_byte(ce_total, count), "ce_nats": ce_total, "bytes": int(count),
              "bytes_per_s": count / max(wall, 1e-9)}
    if callable(counts_of):
        result["stats"] = inner.stats_from_counts(dict(zip(keys, sums)))
    elif callable(stats_of):
        result["stats"] = {k: v / max(count, 1.0) for k, v in zip(keys, sums)}
    return result


__all__ = ["autocast_for", "ce_and_count", "evaluate"]
