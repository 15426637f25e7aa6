"""The global (latent) transformer: causal self-attention over patch vectors, no final norm."""

from __future__ import annotations

import torch
from torch import nn

from blt.model.blocks import Attend, trunc_normal_
from blt.model.config import BltConfig
from blt.model.layout import PatchLayout
from blt.model.local import check_heads, init_layers, make_layers, rope_for
from blt.attention.masks import MaskDescription, patch_causal


class GlobalTransformer(nn.Module):
    """``[B, P, in_dim] -> [B, P, d_global]``; RoPE over patch positions 0..P-1.

    ``token_embedding_projection`` exists only when the encoder's per-patch width differs from
    ``d_global`` (as in the HF port). Attention is causal over patches, blocked at documents
    (``patch_block_causal``) when ``block_documents``.
    """

    def __init__(self, config: BltConfig, in_dim: int) -> None:
        super().__init__()
        check_heads("$.model.global", config.d_global, config.global_heads, config.global_kv_heads)
        self.block_documents = config.block_documents
        self.rope_theta = config.rope_theta
        self.token_embedding_projection = nn.Linear(in_dim, config.d_global, bias=False) if in_dim != config.d_global else None
        self.layers = make_layers(config.global_layers, config.d_global, config.global_heads, config.global_kv_heads,
                                  config.global_ffn, config.norm_eps)
        self.init_weights(config.init_std_factor, config.d_local)

    def describe_masks(self, layout: PatchLayout) -> dict[str, MaskDescription]:
        return {"self": patch_causal(layout, self.block_documents)}

    def forward(self, x_BPE: torch.Tensor, attends: dict[str, Attend]) -> torch.Tensor:
        h_BPD = self.token_embedding_projection(x_BPE) if self.token_embedding_projection is not None else x_BPE
        rope = rope_for(h_BPD.shape[1], self.layers[0], self.rope_theta, h_BPD.device)
        for layer in self.layers:
            h_BPD = layer(h_BPD, rope, attends["self"])
        return h_BPD

    def flops(self, n_patches: float, attention: str = "causal") -> dict[str, float]:
        """Forward FLOPs over ``n_patches`` patches: the input projection and the layers."""
        from blt.flops import layers_flops, linear_flops

        P = float(n_patches)
        return {"global": linear_flops(P, self.token_embedding_projection) + layers_flops(self.layers, P, None, attention)}

    def init_weights(self, init_std_factor: str, d_local: int) -> None:
        if self.token_embedding_projection is not None:  # the reference uses the encoder width here
            trunc_normal_(self.token_embedding_projection.weight, d_local**-0.5)
        init_layers(self.layers, init_std_factor)
