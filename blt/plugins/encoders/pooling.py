"""``pooling``: byte + hash embeddings and a local transformer, then mean or max of each patch's
byte states (no cross-attention). The ablation baseline; output per patch has width ``d_local``.

FLOPs: the local layers over ``N`` bytes (pooling is free). Incremental step: byte states through
the cached layers; a closing patch pools its bytes' stored final states, as ``forward`` does."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from blt.core.hookspecs import hookimpl
from blt.core.specs import EncoderSpec
from blt.flops import layers_flops
from blt.generate.encoder_step import EncoderStep
from blt.model.blocks import Attend
from blt.model.byte_embedding import embed_bytes, make_embeddings
from blt.model.config import LocalEncoderConfig, SharedDims
from blt.model.layout import PatchLayout
from blt.model.local import check_heads, init_layers, make_layers, rope_for
from blt.attention.masks import LOCAL_BLOCK_CAUSAL, MaskDescription, local_block_causal
from blt.model.patch_ops import pool_patches


class PoolingEncoderConfig(LocalEncoderConfig, tag="pooling"):
    mode: Literal["mean", "max"] = "max"


class PoolingEncoder(nn.Module):
    def __init__(self, config: PoolingEncoderConfig, dims: SharedDims) -> None:
        super().__init__()
        check_heads("$.encoder", dims.d_local, config.heads, config.kv_heads)
        self.config, self.rope_theta = config, dims.rope_theta
        self.out_dim = dims.d_local
        self.embed_tokens, self.hash_embeddings = make_embeddings(config, dims.d_local)
        self.layers = make_layers(config.layers, dims.d_local, config.heads, config.kv_heads, config.ffn_dim, dims.norm_eps)
        init_layers(self.layers, dims.init_std_factor)

    mask_kinds = frozenset({LOCAL_BLOCK_CAUSAL})

    def flops(self, n_bytes: float, n_patches: float, attention: str = "causal") -> dict[str, float]:
        return {"local_encoder": layers_flops(self.layers, float(n_bytes), self.config.window, attention)}

    def incremental_step(self, batch: int, total: int, backend: Any, like: torch.Tensor) -> PoolingEncoderStep:
        return PoolingEncoderStep(self, batch, total, backend, like)

    def describe_masks(self, layout: PatchLayout) -> dict[str, MaskDescription]:
        return {"self": local_block_causal(layout, self.config.window, self.config.block_documents)}

    def forward(self, tokens_BN: torch.Tensor, layout: PatchLayout, attends: dict[str, Attend]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ``(byte states [B, N, d], patch vectors [B, P, d])``."""
        h_BND = embed_bytes(tokens_BN, self.embed_tokens, self.hash_embeddings)
        rope = rope_for(h_BND.shape[1], self.layers[0], self.rope_theta, h_BND.device)
        for layer in self.layers:
            h_BND = layer(h_BND, rope, attends["self"])
        return h_BND, pool_patches(h_BND, layout.patch_ids_BN, layout.num_patches, self.config.mode)


class PoolingEncoderStep(EncoderStep):
    def __init__(self, encoder: PoolingEncoder, batch: int, total: int, backend: Any, like: torch.Tensor) -> None:
        super().__init__(encoder, 1, 1, batch, total, backend, like)

    def close(self, rows_C: torch.Tensor) -> torch.Tensor:
        """Patch vectors ``[C, 1, d]``: the pooled final states of each closing patch's bytes."""
        states_CLSD, own_CL = self.own_span(rows_C)  # window 1: the rows' own patches
        h_CLD, mode = states_CLSD[:, :, 0], self.encoder.config.mode
        if own_CL is None:  # one row: its span is its patch
            return h_CLD.amax(1, keepdim=True) if mode == "max" else h_CLD.mean(1, keepdim=True)
        if mode == "max":
            return torch.where(own_CL[:, :, None], h_CLD, float("-inf")).amax(1, keepdim=True)
        own_CL1 = own_CL[:, :, None].to(h_CLD.dtype)
        return (h_CLD * own_CL1).sum(1, keepdim=True) / own_CL1.sum(1, keepdim=True)


@hookimpl
def blt_register_encoders():
    return [EncoderSpec(name="pooling", config_type=PoolingEncoderConfig, build=PoolingEncoder,
                        summary="mean or max of each patch's byte states, no cross-attention (ablation baseline)")]
