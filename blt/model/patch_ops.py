"""Vectorised per-patch reductions and gathers between byte positions and patch slots."""

from __future__ import annotations

import torch


def pool_patches(x_BND: torch.Tensor, patch_ids_BN: torch.Tensor, num_patches: int, mode: str) -> torch.Tensor:
    """Per-patch ``"max"`` or ``"mean"`` of byte states -> ``[B, P, D]``; patches with no byte stay 0."""
    B, N, D = x_BND.shape
    index_BND = patch_ids_BN.unsqueeze(-1).expand(B, N, D)
    out_BPD = x_BND.new_zeros(B, num_patches, D)
    if mode == "max":
        return out_BPD.scatter_reduce(1, index_BND, x_BND, "amax", include_self=False)
    if mode == "mean":
        sums_BPD = out_BPD.scatter_add(1, index_BND, x_BND)
        counts_BP = torch.zeros(B, num_patches, dtype=x_BND.dtype, device=x_BND.device)
        counts_BP = counts_BP.scatter_add(1, patch_ids_BN, torch.ones_like(patch_ids_BN, dtype=x_BND.dtype))
        return sums_BPD / counts_BP.clamp(min=1).unsqueeze(-1)
    raise ValueError(f"pooling mode must be 'max' or 'mean', got {mode!r}")


def gather_patches(patches_BPD: torch.Tensor, patch_ids_BN: torch.Tensor) -> torch.Tensor:
    """``out[b, t] = patches[b, patch_ids[b, t]]`` -> ``[B, N, D]``."""
    B, N = patch_ids_BN.shape
    index_BND = patch_ids_BN.unsqueeze(-1).expand(B, N, patches_BPD.shape[-1])
    return patches_BPD.gather(1, index_BND)


def to_slots(x_BPE: torch.Tensor, k: int) -> torch.Tensor:
    """``[B, P, k*D]`` -> ``[B, P*k, D]``, patch-major: slot ``p*k + j`` is columns ``[j*D, (j+1)*D)`` of patch p."""
    B, P, E = x_BPE.shape
    return x_BPE.reshape(B, P * k, E // k)


def from_slots(x_BSD: torch.Tensor, k: int) -> torch.Tensor:
    """``[B, P*k, D]`` -> ``[B, P, k*D]`` (inverse of :func:`to_slots`)."""
    B, S, D = x_BSD.shape
    return x_BSD.reshape(B, S // k, k * D)
