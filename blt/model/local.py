"""Helpers shared by stacks of transformer layers: construction, RoPE over positions, init."""

from __future__ import annotations

import math

import torch
from torch import nn

from blt.core.errors import ConfigError
from blt.model.blocks import TransformerLayer, ffn_hidden_dim, init_layer, rope_angles


def check_heads(path: str, dim: int, heads: int, kv_heads: int | None) -> None:
    """ConfigError unless heads divide ``dim`` into even head widths and kv_heads divide heads."""
    if dim % heads:
        raise ConfigError(f"{path}.heads: {heads} heads do not divide the width {dim}")
    if (dim // heads) % 2:
        raise ConfigError(f"{path}.heads: head width {dim}/{heads} = {dim // heads} must be even for RoPE")
    if kv_heads is not None and heads % kv_heads:
        raise ConfigError(f"{path}.kv_heads: {kv_heads} does not divide heads = {heads}")


def check_cross_heads(path: str, dim: int, cross_heads: int) -> None:
    """ConfigError unless the cross-attention heads divide ``dim`` (no RoPE there, so any width)."""
    if dim % cross_heads:
        raise ConfigError(f"{path}.cross_heads: {cross_heads} heads do not divide the width {dim}")


def make_layers(n: int, dim: int, heads: int, kv_heads: int | None, ffn_dim: int | None, eps: float) -> nn.ModuleList:
    hidden = ffn_dim or ffn_hidden_dim(dim)
    return nn.ModuleList(TransformerLayer(dim, heads, kv_heads, hidden, eps) for _ in range(n))


def rope_for(length: int, layer: TransformerLayer, theta: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin ``[length, head_dim]`` for positions 0..length-1."""
    return rope_angles(torch.arange(length, device=device), layer.self_attn.head_dim, theta)


def depth_factor(mode: str, depth: int, n_layers: int, dim: int) -> float:
    """The output-projection std divisor of the reference init: 1 (disabled), sqrt(2 (depth + 1))
    (current_depth), sqrt(2 (n_layers + 1)) (global_depth) or dim / 4096 (dim_ratio)."""
    if mode == "disabled":
        return 1.0
    if mode == "current_depth":
        return math.sqrt(2 * (depth + 1))
    if mode == "global_depth":
        return math.sqrt(2 * (n_layers + 1))
    if mode == "dim_ratio":
        return dim / 4096
    raise ValueError(f"unknown init_std_factor {mode!r}")


def init_layers(layers: nn.ModuleList, mode: str) -> None:
    for depth, layer in enumerate(layers):
        dim = layer.input_layernorm.weight.numel()
        init_layer(layer, depth_factor(mode, depth, len(layers), dim))
