"""Held-out bits per byte and throughput for a model on a store of documents."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import torch

from blt import parallel
from blt.data import Batch, eval_batches
from blt.data.store import Store
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
    """``{"bpb", "ce_nats", "bytes", "bytes_per_s"}`` over held-out rows (summed over ranks)."""
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    ce_total, count = 0.0, 0
    try:
        for batch in eval_batches(store, seq_len, batch_size, max_bytes, rank=rank, world=world):
            with autocast_for(device, dtype):
                ce, n = ce_and_count(model, batch, device)
            ce_total += float(ce)
            count += n
    finally:
        model.train(was_training)
    ce_total, count = parallel.all_reduce_sum([ce_total, float(count)], device)
    wall = time.perf_counter() - start
    return {"bpb": bits_per_byte(ce_total, count), "ce_nats": ce_total, "bytes": int(count),
            "bytes_per_s": count / max(wall, 1e-9)}


__all__ = ["autocast_for", "ce_and_count", "evaluate"]
