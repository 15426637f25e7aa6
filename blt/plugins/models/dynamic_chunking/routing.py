"""The routing module, its ratio loss and the straight-through estimator (H-Net, arXiv 2507.07955, sec. 2.2).

Routing: ``q_t = W_q x_t``, ``k_t = W_k x_t``, ``p_t = (1 - cos(q_t, k_{t-1})) / 2`` and a boundary
``b_t = [p_t >= 0.5]``: a chunk starts where a state differs from the one before it. Every
document's first position has ``p = 1`` (so it is always a boundary): the decision at t reads only
states t - 1 and t, and no chunk spans two documents. ``W_q`` and ``W_k`` start as the identity,
as in the paper, so an untrained router compares the encoder's states themselves.

Ratio loss, steering the boundary rate to ``1 / N`` for a target compression ``N``::

    L_ratio = N / (N - 1) * ((N - 1) F G + (1 - F) (1 - G))

with ``F`` the fraction of positions that are boundaries (not differentiable) and ``G`` the mean
``p``; it is 1 at ``F = G = 1 / N``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Router(nn.Module):
    """``forward(x_BLD, doc_start_BL) -> p_BL`` boundary probabilities in [0, 1]."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        with torch.no_grad():
            self.q_proj.weight.copy_(torch.eye(dim))
            self.k_proj.weight.copy_(torch.eye(dim))

    def forward(self, x_BLD: torch.Tensor, doc_start_BL: torch.Tensor) -> torch.Tensor:
        return boundary_probs(self.q_proj(x_BLD), self.k_proj(x_BLD), doc_start_BL)


def boundary_probs(q_BLD: torch.Tensor, k_BLD: torch.Tensor, doc_start_BL: torch.Tensor) -> torch.Tensor:
    """``p_t = (1 - cos(q_t, k_{t-1})) / 2`` clamped to [0, 1]; 1 at position 0 and at document starts.

    Elementwise products and sums only (normalised vectors), so no matmul FLOPs beyond W_q, W_k."""
    dtype = torch.promote_types(q_BLD.dtype, torch.float32)  # at least float32 (bf16 autocast), float64 kept
    qn = F.normalize(q_BLD.to(dtype), dim=-1)
    kn = F.normalize(k_BLD.to(dtype), dim=-1)
    cos_BL = (qn[:, 1:] * kn[:, :-1]).sum(-1)
    first_B1 = torch.ones(cos_BL.shape[0], 1, dtype=cos_BL.dtype, device=cos_BL.device)
    p_BL = torch.cat([first_B1, ((1 - cos_BL) / 2).clamp(0.0, 1.0)], dim=1)
    return torch.where(doc_start_BL, torch.ones_like(p_BL), p_BL).to(q_BLD.dtype)


def boundaries(p_BL: torch.Tensor) -> torch.Tensor:
    """``b_t = p_t >= 0.5`` (a BoolTensor)."""
    return p_BL >= 0.5


def ratio_loss(b_BL: torch.Tensor, p_BL: torch.Tensor, valid_BL: torch.Tensor, target: float) -> torch.Tensor:
    """``N / (N - 1) * ((N - 1) F G + (1 - F)(1 - G))`` with F and G over the batch's valid
    positions (a 0-dim tensor)."""
    n_valid = valid_BL.sum().clamp(min=1)
    frac = (b_BL & valid_BL).sum().to(p_BL.dtype) / n_valid            # F: no gradient
    mean_p = (p_BL * valid_BL.to(p_BL.dtype)).sum() / n_valid          # G: gradient to the router
    N = float(target)
    return N / (N - 1) * ((N - 1) * frac * mean_p + (1 - frac) * (1 - mean_p))


def straight_through(x: torch.Tensor) -> torch.Tensor:
    """Exactly 1 in the forward pass, gradient 1 with respect to ``x`` in the backward pass."""
    return 1 + (x - x.detach())


def confidence(b_BL: torch.Tensor, p_BL: torch.Tensor) -> torch.Tensor:
    """The router's confidence in its decision: ``p_t`` at a boundary, ``1 - p_t`` elsewhere."""
    return torch.where(b_BL, p_BL, 1 - p_BL)


__all__ = ["Router", "boundaries", "boundary_probs", "confidence", "ratio_loss", "straight_through"]
