"""``add``: each byte state plus the global state of patch ``decoder_patch_ids[t]`` (projected to
``d_local`` when the widths differ), then local layers and a final RMSNorm. No cross-attention.

FLOPs: the projection ``2 P D d`` when ``D != d``, and the local layers over ``N`` bytes.
Incremental step: the projected state of the row's most recently closed patch (the one byte t
reads) is kept and added to each new byte state; the layers keep a windowed cache."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from blt.core.hookspecs import hookimpl
from blt.core.specs import DecoderSpec
from blt.flops import layers_flops, linear_flops
from blt.generate.fast_layers import FastLinear, FastNorm
from blt.generate.local_stack import LocalStack, StackStep
from blt.model.blocks import Attend, RMSNorm, trunc_normal_
from blt.model.config import LocalDecoderConfig, SharedDims
from blt.model.layout import PatchLayout
from blt.model.local import check_heads, init_layers, make_layers, rope_for
from blt.attention.masks import LOCAL_BLOCK_CAUSAL, MaskDescription, local_block_causal
from blt.model.patch_ops import gather_patches


class AddDecoderConfig(LocalDecoderConfig, tag="add"):
    pass


class AddDecoder(nn.Module):
    def __init__(self, config: AddDecoderConfig, dims: SharedDims) -> None:
        super().__init__()
        check_heads("$.decoder", dims.d_local, config.heads, config.kv_heads)
        self.config, self.rope_theta = config, dims.rope_theta
        self.patch_embedding_projection = (
            nn.Linear(dims.d_global, dims.d_local, bias=False) if dims.d_global != dims.d_local else None
        )
        self.layers = make_layers(config.layers, dims.d_local, config.heads, config.kv_heads, config.ffn_dim, dims.norm_eps)
        self.norm = RMSNorm(dims.d_local, dims.norm_eps)
        if self.patch_embedding_projection is not None:
            trunc_normal_(self.patch_embedding_projection.weight, dims.d_global**-0.5)
        init_layers(self.layers, dims.init_std_factor)

    mask_kinds = frozenset({LOCAL_BLOCK_CAUSAL})

    def flops(self, n_bytes: float, n_patches: float, attention: str = "causal") -> dict[str, float]:
        N, P = float(n_bytes), float(n_patches)
        return {"decoder_cross_attention": linear_flops(P, self.patch_embedding_projection),
                "local_decoder": layers_flops(self.layers, N, self.config.window, attention)}

    def incremental_step(self, batch: int, total: int, backend: Any, like: torch.Tensor) -> AddDecoderStep:
        return AddDecoderStep(self, batch, total, backend, like)

    def describe_masks(self, layout: PatchLayout) -> dict[str, MaskDescription]:
        return {"self": local_block_causal(layout, self.config.window, self.config.block_documents)}

    def forward(self, bytes_BND: torch.Tensor, patches_BPG: torch.Tensor, layout: PatchLayout,
                attends: dict[str, Attend]) -> torch.Tensor:
        """``(encoder byte states [B, N, d], global states [B, P, d_global]) -> normed states [B, N, d]``."""
        if self.patch_embedding_projection is not None:
            patches_BPG = self.patch_embedding_projection(patches_BPG)
        h_BND = bytes_BND + gather_patches(patches_BPG, layout.decoder_patch_ids_BN)
        rope = rope_for(h_BND.shape[1], self.layers[0], self.rope_theta, h_BND.device)
        for layer in self.layers:
            h_BND = layer(h_BND, rope, attends["self"])
        return self.norm(h_BND)


class AddDecoderStep(StackStep):
    def __init__(self, decoder: AddDecoder, batch: int, total: int, backend: Any, like: torch.Tensor) -> None:
        self.decoder = decoder
        self.stack = LocalStack(decoder.layers, decoder.config.window, decoder.rope_theta, batch, total, backend, like,
                                block_documents=decoder.config.block_documents)
        self.final_norm = FastNorm(decoder.norm)
        self.project = FastLinear(decoder.patch_embedding_projection)
        d = decoder.norm.weight.numel()
        self.latest_B1D = torch.zeros(batch, 1, d, dtype=like.dtype, device=like.device)

    def push(self, rows_C: torch.Tensor, pid_C: torch.Tensor, global_C1G: torch.Tensor) -> None:
        self.latest_B1D.index_copy_(0, rows_C, self.project(global_C1G))

    def snapshot(self) -> tuple:
        """The state after the last ``step``/``push``, for :meth:`restore` (speculative decoding)."""
        return self.stack.snapshot(), self.latest_B1D.clone()

    def restore(self, mark: tuple) -> None:
        stack, latest = mark
        self.stack.restore(stack)
        self.latest_B1D.copy_(latest)

    def verify(self, bytes_M1D: torch.Tensor, t0: int, doc_M: torch.Tensor, pushes: list, reads: list[int],
               row: int = 0) -> torch.Tensor:
        """Speculative decoding's verification and prompt prefill for row ``row`` (see the
        cross-attention decoder's ``verify``): position i adds the last global state pushed at or
        before it."""
        latest, per, j = self.latest_B1D[row : row + 1], [], 0
        for i in range(bytes_M1D.shape[0]):
            while j < len(pushes) and pushes[j][0] <= i:
                state = pushes[j][2]
                latest = self.project(state)
                j += 1
            per.append(latest)
        h_MD = (bytes_M1D + torch.cat(per, dim=0))[:, 0]
        self.stack.begin_block(t0, doc_M, row)
        for i in range(len(self.decoder.layers)):
            h_MD = self.stack.layer_block(i, h_MD)
        return self.final_norm(h_MD)[:, None]

    def step(self, bytes_B1D: torch.Tensor, t: int, read_B: torch.Tensor, doc_B: torch.Tensor) -> torch.Tensor:
        self.stack.begin(t, doc_B)
        h_BD = (bytes_B1D + self.latest_B1D)[:, 0]
        for i in range(len(self.decoder.layers)):
            h_BD = self.stack.layer(i, h_BD)
        return self.final_norm(h_BD)[:, None]


@hookimpl
def blt_register_decoders():
    return [DecoderSpec(name="add", config_type=AddDecoderConfig, build=AddDecoder,
                        summary="adds the previous patch's global state to each byte state, no cross-attention")]
