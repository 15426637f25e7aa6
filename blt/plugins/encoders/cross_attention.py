"""``cross_attention``: the BLT local encoder.

Byte + hash n-gram embeddings, ``layers`` local transformer layers (sliding window within a
document), then patch cross-attention: each patch has ``k`` query slots, initialised by per-patch
max pooling of the byte states and a ``d -> k d`` projection; the slots read their patch's bytes
(``byte_to_patch``) with the reference's double residual ``x <- 2x + attn``. Output per patch:
its k slots concatenated, width ``k * d_local``.

FLOPs (``d`` = d_local, ``N`` bytes, ``P`` patches, ``C`` cross layers): the local layers over
``N`` bytes (window ``window``); the pooled-slot projection ``2 P d (k d)`` (once, or per cross
layer with ``repool``); per cross layer ``q, o`` on ``P k`` slots, ``k, v`` on ``N`` bytes and
attention over ``k N min(W, P)`` pairs (each slot reads the bytes of ``W`` patches; a dense kernel
computes ``P k N``).

Incremental step: byte states through the cached layers; when a patch closes, the pooling,
projection and cross-attention above run on the stored states of its bytes (and of the ``W - 1``
patches before it), exactly as ``forward`` does.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from blt.core.config import PositiveInt
from blt.core.hookspecs import hookimpl
from blt.core.specs import EncoderSpec
from blt.flops import cross_layer_flops, layers_flops, linear_flops
from blt.generate.encoder_step import EncoderStep
from blt.generate.fast_layers import FastCross, FastLinear
from blt.model.blocks import Attend, trunc_normal_
from blt.model.byte_embedding import embed_bytes, make_embeddings
from blt.model.config import LocalEncoderConfig, SharedDims
from blt.model.cross_attention import CrossAttention
from blt.model.layout import PatchLayout
from blt.model.local import check_cross_heads, check_heads, depth_factor, init_layers, make_layers, rope_for
from blt.attention.masks import BYTE_TO_PATCH, LOCAL_BLOCK_CAUSAL, MaskDescription, byte_to_patch, local_block_causal
from blt.model.patch_ops import from_slots, pool_patches, to_slots


class CrossAttentionEncoderConfig(LocalEncoderConfig, tag="cross_attention"):
    k: PositiveInt = 2                  # query slots per patch (cross_attn_k)
    cross_heads: PositiveInt = 4
    cross_all_layers: bool = False      # cross-attention after every layer, else after the last only
    cross_window: PositiveInt = 1       # a slot of patch p reads bytes of patches p-W+1..p (1: its own)
    repool: bool = False                # with cross_all_layers: re-initialise the slots by pooling at every
                                        # cross-attention (HF port) instead of once, accumulating (reference).
                                        # The port then drops the earlier layers' slots, so those layers get
                                        # no gradient: this exists to load the port's checkpoints exactly.


class CrossAttentionEncoder(nn.Module):
    def __init__(self, config: CrossAttentionEncoderConfig, dims: SharedDims) -> None:
        super().__init__()
        d = dims.d_local
        check_heads("$.encoder", d, config.heads, config.kv_heads)
        check_cross_heads("$.encoder", d, config.cross_heads)
        self.config, self.rope_theta = config, dims.rope_theta
        self.out_dim = config.k * d
        self.embed_tokens, self.hash_embeddings = make_embeddings(config, d)
        self.layers = make_layers(config.layers, d, config.heads, config.kv_heads, config.ffn_dim, dims.norm_eps)
        self.patch_embedding_projection = nn.Linear(d, config.k * d, bias=False)
        n_cross = config.layers if config.cross_all_layers else 1
        self.cross_attn_layers = nn.ModuleList(CrossAttention(d, config.cross_heads, dims.norm_eps) for _ in range(n_cross))
        init_layers(self.layers, dims.init_std_factor)
        trunc_normal_(self.patch_embedding_projection.weight, d**-0.5)
        for j, cross in enumerate(self.cross_attn_layers):
            cross.init_weights(depth_factor(dims.init_std_factor, j, n_cross, d))

    mask_kinds = frozenset({LOCAL_BLOCK_CAUSAL, BYTE_TO_PATCH})

    def flops(self, n_bytes: float, n_patches: float, attention: str = "causal") -> dict[str, float]:
        cfg, d = self.config, self.patch_embedding_projection.in_features
        N, P = float(n_bytes), float(n_patches)
        n_cross = len(self.cross_attn_layers)
        n_pool = n_cross if cfg.repool else 1
        pairs = P * cfg.k * N if attention == "dense" else cfg.k * N * min(cfg.cross_window, P)
        return {"local_encoder": layers_flops(self.layers, N, cfg.window, attention),
                "encoder_cross_attention": n_pool * linear_flops(P, self.patch_embedding_projection)
                + n_cross * cross_layer_flops(P * cfg.k, N, d, pairs)}

    def incremental_step(self, batch: int, total: int, backend: Any, like: torch.Tensor) -> CrossAttentionEncoderStep:
        return CrossAttentionEncoderStep(self, batch, total, backend, like)

    def describe_masks(self, layout: PatchLayout) -> dict[str, MaskDescription]:
        return {"self": local_block_causal(layout, self.config.window, self.config.block_documents),
                "cross": byte_to_patch(layout, self.config.k, self.config.cross_window)}

    def forward(self, tokens_BN: torch.Tensor, layout: PatchLayout, attends: dict[str, Attend]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ``(byte states [B, N, d], patch vectors [B, P, k*d])``."""
        h_BND = embed_bytes(tokens_BN, self.embed_tokens, self.hash_embeddings)
        rope = rope_for(h_BND.shape[1], self.layers[0], self.rope_theta, h_BND.device)
        first_cross = len(self.layers) - len(self.cross_attn_layers)
        slots_BSD = None
        for i, layer in enumerate(self.layers):
            h_BND = layer(h_BND, rope, attends["self"])
            if i < first_cross:
                continue
            if slots_BSD is None or self.config.repool:
                pooled_BPD = pool_patches(h_BND, layout.patch_ids_BN, layout.num_patches, "max")
                slots_BSD = to_slots(self.patch_embedding_projection(pooled_BPD), self.config.k)  # (B, P*k, d)
            slots_BSD = slots_BSD + self.cross_attn_layers[i - first_cross](slots_BSD, h_BND, attends["cross"])
        return h_BND, from_slots(slots_BSD, self.config.k)


class CrossAttentionEncoderStep(EncoderStep):
    def __init__(self, encoder: CrossAttentionEncoder, batch: int, total: int, backend: Any, like: torch.Tensor) -> None:
        super().__init__(encoder, len(encoder.cross_attn_layers), encoder.config.cross_window, batch, total, backend, like)
        self.fast_cross = [FastCross(cross) for cross in encoder.cross_attn_layers]
        self.project = FastLinear(encoder.patch_embedding_projection)

    def close(self, rows_C: torch.Tensor) -> torch.Tensor:
        """Patch vectors ``[C, 1, k d]`` of the patches that close at this byte."""
        enc, k = self.encoder, self.encoder.config.k
        own = self.own_span(rows_C)
        if own is None:
            states_CLSD, ids_CL, pid_C = self.closing_span(rows_C)
            others_CL = (ids_CL != pid_C[:, None]).long()  # 0: the closing patch's own bytes
            # byte_to_patch: a slot of patch p reads the bytes of patches p - W + 1 .. p (the span
            # ends at this byte, so no byte after p is in it)
            mask = (ids_CL > (pid_C - self.window)[:, None])[:, None, None, :]
        else:  # window 1: each slot reads and pools its own patch's bytes (all of a single row's span)
            states_CLSD, own_CL = own
            mask = None if own_CL is None else own_CL[:, None, None, :]
        slots_CKD = None
        for j, cross in enumerate(self.fast_cross):
            h_CLD = states_CLSD[:, :, j]
            if slots_CKD is None or enc.config.repool:
                if own is None:
                    pooled_C1D = pool_patches(h_CLD, others_CL, 2, "max")[:, :1]
                elif own_CL is None:
                    pooled_C1D = h_CLD.amax(1, keepdim=True)
                else:
                    pooled_C1D = torch.where(own_CL[:, :, None], h_CLD, float("-inf")).amax(1, keepdim=True)
                slots_CKD = to_slots(self.project(pooled_C1D), k)
            slots_CKD = slots_CKD + cross(slots_CKD, *cross.keys(h_CLD), mask)  # the reference's double residual
        return from_slots(slots_CKD, k)


@hookimpl
def blt_register_encoders():
    return [EncoderSpec(name="cross_attention", config_type=CrossAttentionEncoderConfig, build=CrossAttentionEncoder,
                        summary="hash n-gram embeddings + local transformer + patch cross-attention (BLT)")]
