"""Patch bookkeeping shared by every patcher: start masks -> lengths, max-length splits, patch ids.

A patcher decides, for each row, which positions start a patch (a boolean ``[B, N']`` mask with
``N' = N + include_next_token``); everything else here is vectorised tensor code with no Python
loop over positions or patches.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import attrs
import torch

from blt.core.errors import InputError
from blt.tokens import VOCAB_SIZE


@attrs.frozen(eq=False)
class Patches:
    """The result of ``Patcher.patch``.

    ``lengths``: ``LongTensor[B, P]`` (``[P]`` for a 1-D input), rows zero-padded on the right.
    ``scores``: optional per-position scores that drove the boundaries (entropies ``[B, N]``).
    """

    lengths: torch.Tensor
    scores: torch.Tensor | None = None

    @property
    def num_patches(self) -> torch.Tensor:
        """``LongTensor[B]`` (or scalar): non-zero patches per row."""
        return (self.lengths > 0).sum(-1)

    def starts(self) -> torch.Tensor:
        """Start positions, ``[B, P]``; padded entries equal the row total."""
        return torch.cumsum(self.lengths, -1) - self.lengths


@runtime_checkable
class Patcher(Protocol):
    """What every patcher provides: ``patch(tokens, include_next_token=False, entropies=None)``
    returning :class:`Patches`, and ``incremental``."""

    incremental: bool

    def patch(self, tokens: torch.Tensor, *, include_next_token: bool = False, entropies: torch.Tensor | None = None) -> Patches: ...


def as_batch(tokens: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """Validate a token tensor and return it as ``[B, N]`` plus whether the input was 1-D."""
    if not isinstance(tokens, torch.Tensor):
        raise InputError(f"tokens must be a torch.Tensor of ids, got {type(tokens).__name__}")
    if tokens.dtype.is_floating_point or tokens.dtype == torch.bool or tokens.is_complex():
        raise InputError(f"tokens must be an integer tensor, got dtype {tokens.dtype}")
    if tokens.dim() == 1:
        squeeze = True
        tokens = tokens.unsqueeze(0)
    elif tokens.dim() == 2:
        squeeze = False
    else:
        raise InputError(f"tokens must have shape [N] or [B, N], got {list(tokens.shape)}")
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= VOCAB_SIZE):
        raise InputError(f"token ids must lie in 0..{VOCAB_SIZE - 1}, got min {int(tokens.min())}, max {int(tokens.max())}")
    return tokens.long(), squeeze


def split_long_patches(starts_BN: torch.Tensor, max_patch_length: int | None) -> torch.Tensor:
    """Add starts so that no patch exceeds ``max_patch_length``: each long patch is split left to
    right into m, m, ..., rest. Depends only on earlier positions, so incrementality is kept."""
    if max_patch_length is None:
        return starts_BN
    if max_patch_length < 1:
        raise InputError(f"max_patch_length must be >= 1, got {max_patch_length}")
    B, N = starts_BN.shape
    pos = torch.arange(N, device=starts_BN.device).expand(B, N)
    last_start = torch.cummax(torch.where(starts_BN, pos, torch.zeros_like(pos)), dim=1).values
    return starts_BN | ((pos - last_start) % max_patch_length == 0)


def lengths_from_starts(starts_BN: torch.Tensor) -> torch.Tensor:
    """Boolean start mask ``[B, N']`` -> lengths ``[B, P]`` (right-padded with 0, P = max count).

    Position 0 must be a start in every non-empty row.
    """
    B, N = starts_BN.shape
    if N == 0:
        return torch.zeros(B, 0, dtype=torch.long, device=starts_BN.device)
    pos = torch.arange(N, device=starts_BN.device).expand(B, N)
    start_pos = torch.where(starts_BN, pos, torch.full_like(pos, N)).sort(dim=1).values  # (B, N)
    count = int(starts_BN.sum(1).max())
    start_pos = start_pos[:, :count]
    nxt = torch.cat([start_pos[:, 1:], torch.full((B, 1), N, device=start_pos.device, dtype=start_pos.dtype)], dim=1)
    return nxt - start_pos


def patch_ids_from_lengths(lengths_BP: torch.Tensor, total: int) -> torch.Tensor:
    """``patch_ids[b, t]`` = index of the patch that contains position t, for t < total. ``[B, total]``."""
    B, P = lengths_BP.shape
    ends = torch.cumsum(lengths_BP, dim=1)  # (B, P)
    pos = torch.arange(total, device=lengths_BP.device).expand(B, total).contiguous()
    return torch.searchsorted(ends, pos, right=True)


def finish(starts_BN: torch.Tensor, max_patch_length: int | None, squeeze: bool, scores: torch.Tensor | None = None) -> Patches:
    """Apply the max-length split, convert to lengths and restore the input's rank."""
    lengths = lengths_from_starts(split_long_patches(starts_BN, max_patch_length))
    if squeeze:
        lengths = lengths[0]
        scores = scores[0] if scores is not None else None
    return Patches(lengths=lengths, scores=scores)


def dynamic_prefix(B: int, N_out: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """A ``[B, N']`` start mask with positions 0 and 1 set (BOS is a patch of its own)."""
    starts = torch.zeros(B, N_out, dtype=torch.bool, device=device)
    starts[:, : min(2, N_out)] = True
    return starts
