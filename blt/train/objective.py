"""Loss and bits per byte.

``BPB = sum of cross-entropy (nats) / ln 2 / number of target bytes``; every non-pad target counts
(BOS and EOS targets included, pad id 0 ignored), as in the reference. The training loss of a
step is the same quantity in nats, averaged over the step's global targets.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from blt.tokens import BPE_ID, PAD_ID

LN2 = math.log(2.0)


def cross_entropy_sum(logits_BNV: torch.Tensor, targets_BN: torch.Tensor) -> torch.Tensor:
    """Sum of next-token cross-entropy (nats, float32) over non-pad targets; a 0-dim tensor."""
    return F.cross_entropy(logits_BNV.float().flatten(0, 1), targets_BN.flatten(), ignore_index=PAD_ID, reduction="sum")


def target_byte_count(targets_BN: torch.Tensor) -> int:
    """Targets that are bytes of the text: every id but pad (ignored) and the BPE delimiter (a
    patch boundary the model predicts, scored in the loss but not a byte of the text)."""
    return int(((targets_BN != PAD_ID) & (targets_BN != BPE_ID)).sum())


def bits_per_byte(ce_nats_sum: float, n_bytes: float) -> float:
    return ce_nats_sum / LN2 / max(n_bytes, 1.0)


def lr_at(step: int, *, lr: float, warmup: int, total: int, lr_min_ratio: float) -> float:
    """Learning rate for optimizer step ``step`` (0-based): linear warmup, then cosine to ``lr * lr_min_ratio``."""
    if warmup and step < warmup:
        return lr * (step + 1) / warmup
    span = max(total - warmup, 1)
    progress = min(max(step - warmup, 0) / span, 1.0)
    return lr * (lr_min_ratio + (1 - lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


__all__ = ["LN2", "bits_per_byte", "cross_entropy_sum", "lr_at", "target_byte_count"]
