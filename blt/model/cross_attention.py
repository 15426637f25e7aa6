"""Cross-attention between byte states and patch slots (no RoPE), as in the reference and HF port."""

from __future__ import annotations

import torch
from torch import nn

from blt.model.blocks import Attend, RMSNorm, trunc_normal_


class CrossAttention(nn.Module):
    """``x + o_proj(attn(q_norm(x) -> k_norm(kv)))``: bias-free projections, ``heads`` heads of ``dim // heads``.

    The module already adds its query input; callers add it again (``x <- 2x + attn``), the
    reference's *double residual*, which weight-compatible models must reproduce.
    """

    def __init__(self, dim: int, heads: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.q_norm = RMSNorm(dim, eps)
        self.k_norm = RMSNorm(dim, eps)
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.o_proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x_BQD: torch.Tensor, kv_BKD: torch.Tensor, attend: Attend) -> torch.Tensor:
        B, Q, D = x_BQD.shape
        K = kv_BKD.shape[1]
        kv_normed = self.k_norm(kv_BKD)
        q = self.q_proj(self.q_norm(x_BQD)).view(B, Q, self.heads, self.head_dim).transpose(1, 2)  # (B, H, Q, hd)
        k = self.k_proj(kv_normed).view(B, K, self.heads, self.head_dim).transpose(1, 2)  # (B, H, K, hd)
        v = self.v_proj(kv_normed).view(B, K, self.heads, self.head_dim).transpose(1, 2)
        o_BQD = attend(q, k, v).transpose(1, 2).reshape(B, Q, D)
        return x_BQD + self.o_proj(o_BQD)

    def init_weights(self, factor: float = 1.0) -> None:
        dim = self.q_proj.in_features
        for linear in (self.q_proj, self.k_proj, self.v_proj):
            trunc_normal_(linear.weight, dim**-0.5)
        trunc_normal_(self.o_proj.weight, dim**-0.5 / factor, bound=3 * dim**-0.5)
        nn.init.ones_(self.q_norm.weight)
        nn.init.ones_(self.k_norm.weight)
