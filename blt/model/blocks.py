"""Shared transformer pieces: RMSNorm, interleaved-pair RoPE, SwiGLU and a pre-norm layer.

Parameter names follow the Hugging Face BLT port (``input_layernorm``, ``self_attn.q_proj``,
``mlp.gate_proj`` ...) so converted checkpoints map one to one. Attention itself is injected:
a layer receives an ``attend(q_BHTD, k_BHSD, v_BHSD) -> o_BHTD`` callable that already carries
the batch's mask in the backend's own form, so no layer builds or inspects a mask.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from blt.model.rms_norm import can_fuse, fused_rms_norm

Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def ffn_hidden_dim(dim: int, multiplier: float = 1.0, multiple_of: int = 256) -> int:
    """The reference SwiGLU width: int(2 * 4d / 3) * multiplier, rounded up to ``multiple_of``."""
    hidden = int(multiplier * int(2 * 4 * dim / 3))
    return multiple_of * math.ceil(hidden / multiple_of)


class RMSNorm(nn.Module):
    """``x * rsqrt(mean(x^2) + eps)`` times the weight, statistics in float32 (float64 for float64 inputs).

    float32/float64 calls run :func:`blt.model.rms_norm.fused_rms_norm` (same result, a
    hand-derived backward with fewer passes); other dtypes run the eager formula below.
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if can_fuse(x, self.weight):
            return fused_rms_norm(x, self.weight, self.eps)
        return self.eager(x)

    def eager(self, x: torch.Tensor) -> torch.Tensor:
        """The plain formula (what ``torch.compile`` fuses)."""
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.to(x.dtype) * self.weight


def rope_angles(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables for integer ``positions`` (any shape ``[..., T]``) -> ``[..., T, head_dim]``.

    Interleaved-pair layout: channels (2i, 2i+1) rotate by ``pos * theta^(-2i/head_dim)``; each
    frequency is repeated in the two adjacent channels.
    """
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim))
    angles = positions.to(torch.float32).unsqueeze(-1) * inv_freq  # (..., T, hd/2)
    angles = angles.repeat_interleave(2, dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x_BHTD: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent pairs: (x0, x1) -> (x0 cos - x1 sin, x1 cos + x0 sin). cos/sin ``[T, D]`` or ``[B, 1, T, D]``.

    In float32/float64 the pairs are complex numbers and the rotation is one complex multiply
    (one pass over ``x``; the output keeps ``x``'s memory layout). Other dtypes rotate in float32.
    """
    if x_BHTD.dtype in (torch.float32, torch.float64) and cos.dtype == x_BHTD.dtype and x_BHTD.stride(-1) == 1:
        freqs = torch.complex(cos[..., ::2], sin[..., ::2])  # (..., T, D/2): e^{i angle}
        x_complex = torch.view_as_complex(x_BHTD.unflatten(-1, (-1, 2)))
        return torch.view_as_real(x_complex * freqs).flatten(-2)
    x_pairs = x_BHTD.unflatten(-1, (-1, 2))
    rotated = torch.stack((-x_pairs[..., 1], x_pairs[..., 0]), dim=-1).flatten(-2)
    return (x_BHTD.float() * cos + rotated.float() * sin).to(x_BHTD.dtype)


class KVCache(Protocol):
    """Optional cache a layer appends its keys/values to (used by generation)."""

    def update(self, k_BHTD: torch.Tensor, v_BHTD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


class SwiGLU(nn.Module):
    """``down(silu(gate x) * up x)``, bias-free."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class SelfAttention(nn.Module):
    """Multi-head (grouped-query) self-attention with RoPE; the attention kernel is injected."""

    def __init__(self, dim: int, heads: int, kv_heads: int | None = None, head_dim: int | None = None) -> None:
        super().__init__()
        kv_heads = kv_heads or heads
        head_dim = head_dim or dim // heads
        if heads % kv_heads:
            raise ValueError(f"heads ({heads}) must be a multiple of kv_heads ({kv_heads})")
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.q_proj = nn.Linear(dim, heads * head_dim, bias=False)
        self.k_proj = nn.Linear(dim, kv_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(dim, kv_heads * head_dim, bias=False)
        self.o_proj = nn.Linear(heads * head_dim, dim, bias=False)

    def forward(
        self, x_BTD: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], attend: Attend, cache: KVCache | None = None
    ) -> torch.Tensor:
        B, T, _ = x_BTD.shape
        q = self.q_proj(x_BTD).view(B, T, self.heads, self.head_dim).transpose(1, 2)  # (B, H, T, hd)
        k = self.k_proj(x_BTD).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x_BTD).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = rope
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v)
        if self.kv_heads != self.heads:
            rep = self.heads // self.kv_heads
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        o = attend(q, k, v)  # (B, H, T, hd)
        return self.o_proj(o.transpose(1, 2).reshape(B, T, self.heads * self.head_dim))


class TransformerLayer(nn.Module):
    """Pre-norm block: ``h = x + Attn(norm(x))``; ``out = h + MLP(norm(h))``.

    ``compiled`` (set by ``build_model`` from ``[model] compile``): calls without a cache run the
    work before and after the attention kernel as two ``torch.compile``'d functions (dynamic
    shapes, shared by every layer), fusing the norms, RoPE, SwiGLU and residual adds; the
    attention call itself stays eager. Cached (generation) calls always run eagerly.
    """

    compiled: bool = False

    def __init__(self, dim: int, heads: int, kv_heads: int | None = None, ffn_dim: int | None = None, eps: float = 1e-5) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(dim, eps)
        self.self_attn = SelfAttention(dim, heads, kv_heads)
        self.post_attention_layernorm = RMSNorm(dim, eps)
        self.mlp = SwiGLU(dim, ffn_dim or ffn_hidden_dim(dim))

    def forward(
        self, x_BTD: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], attend: Attend, cache: KVCache | None = None
    ) -> torch.Tensor:
        if self.compiled and cache is None:
            pre, post = _compiled_layer_parts()
            q, k, v = pre(self, x_BTD, *rope)
            attn = self.self_attn
            if attn.kv_heads != attn.heads:
                rep = attn.heads // attn.kv_heads
                k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
            return post(self, x_BTD, attend(q, k, v))
        h = x_BTD + self.self_attn(self.input_layernorm(x_BTD), rope, attend, cache)
        return h + self.mlp(self.post_attention_layernorm(h))


def _rotate_pairs(x_BHTD: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """:func:`apply_rope`'s rotation in real arithmetic (what the compiler fuses; no complex views)."""
    x_pairs = x_BHTD.unflatten(-1, (-1, 2))
    rotated = torch.stack((-x_pairs[..., 1], x_pairs[..., 0]), dim=-1).flatten(-2)
    if x_BHTD.dtype in (torch.float32, torch.float64) and cos.dtype == x_BHTD.dtype:
        return x_BHTD * cos + rotated * sin
    return (x_BHTD.float() * cos + rotated.float() * sin).to(x_BHTD.dtype)


def _layer_pre_attention(layer: TransformerLayer, x_BTD: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """norm -> q, k, v projections -> RoPE on q and k: ``(q, k, v)`` as ``[B, H, T, hd]``."""
    attn = layer.self_attn
    B, T, _ = x_BTD.shape
    h = layer.input_layernorm.eager(x_BTD)
    q = attn.q_proj(h).view(B, T, attn.heads, attn.head_dim).transpose(1, 2)
    k = attn.k_proj(h).view(B, T, attn.kv_heads, attn.head_dim).transpose(1, 2)
    v = attn.v_proj(h).view(B, T, attn.kv_heads, attn.head_dim).transpose(1, 2)
    return _rotate_pairs(q, cos, sin), _rotate_pairs(k, cos, sin), v


def _layer_post_attention(layer: TransformerLayer, x_BTD: torch.Tensor, o_BHTD: torch.Tensor) -> torch.Tensor:
    """o_proj + residual, then norm -> SwiGLU + residual."""
    B, T, _ = x_BTD.shape
    h = x_BTD + layer.self_attn.o_proj(o_BHTD.transpose(1, 2).reshape(B, T, -1))
    return h + layer.mlp(layer.post_attention_layernorm.eager(h))


_COMPILED_PARTS: tuple | None = None


def _compiled_layer_parts() -> tuple:
    """The two compiled halves of a layer, created once per process (compiled on first use)."""
    global _COMPILED_PARTS
    if _COMPILED_PARTS is None:
        _COMPILED_PARTS = (torch.compile(_layer_pre_attention, dynamic=True), torch.compile(_layer_post_attention, dynamic=True))
    return _COMPILED_PARTS


def trunc_normal_(weight: torch.Tensor, std: float, bound: float | None = None) -> None:
    """The reference init: truncated normal at +-3 std (or at ``+-bound`` when given)."""
    bound = 3 * std if bound is None else bound
    nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-bound, b=bound)


def init_layer(layer: TransformerLayer, factor: float = 1.0) -> None:
    """Reference init for one layer (truncated normal at 3 sigma): in-projections dim^-0.5, outputs scaled by ``factor``."""
    dim = layer.input_layernorm.weight.numel()
    hidden = layer.mlp.down_proj.in_features
    attn, mlp = layer.self_attn, layer.mlp
    for w in (attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight, mlp.gate_proj.weight, mlp.up_proj.weight):
        trunc_normal_(w, dim**-0.5)
    # Output projections: std divided by the depth factor, truncation bounds kept at 3x the base std.
    trunc_normal_(attn.o_proj.weight, dim**-0.5 / factor, bound=3 * dim**-0.5)
    trunc_normal_(mlp.down_proj.weight, hidden**-0.5 / factor, bound=3 * hidden**-0.5)
    for norm in (layer.input_layernorm, layer.post_attention_layernorm):
        nn.init.ones_(norm.weight)
