"""``gated``: each byte state is gated and shifted by the global state it may read, then local
layers and an RMSNorm.

For byte t with encoder state ``b_t`` (width d = d_local) and ``g`` the global state (width
d_global) of patch ``decoder_patch_ids[t] = P(t+1) - 1`` (the last patch that ends at or before t)::

    h_t = b_t * sigmoid(W_g g + beta) + W_v g          (W_g, W_v: d_global -> d; beta starts at gate_bias)
    h <- local transformer layers (h);  out = RMSNorm(h)

The gate lets the global context decide, channel by channel, how much of the byte's own state
passes; ``W_v g`` adds what the global state contributes. The model's ``lm_head`` follows.
"""

from __future__ import annotations

import torch
from torch import nn

import blt
from blt.core.specs import DecoderSpec
from blt.flops import layers_flops, linear_flops
from blt.model.blocks import Attend, RMSNorm, trunc_normal_
from blt.model.config import LocalDecoderConfig, SharedDims
from blt.model.layout import PatchLayout
from blt.model.local import check_heads, init_layers, make_layers, rope_for
from blt.attention.masks import LOCAL_BLOCK_CAUSAL, MaskDescription, local_block_causal
from blt.model.patch_ops import gather_patches


class GatedDecoderConfig(LocalDecoderConfig, tag="gated"):
    gate_bias: float = 1.0   # initial beta: sigmoid(1) ~ 0.73 of each byte state passes at the start


class GatedDecoder(nn.Module):
    mask_kinds = frozenset({LOCAL_BLOCK_CAUSAL})

    def __init__(self, config: GatedDecoderConfig, dims: SharedDims) -> None:
        super().__init__()
        d, D = dims.d_local, dims.d_global
        check_heads("$.decoder", d, config.heads, config.kv_heads)
        self.config, self.rope_theta, self.d, self.d_global = config, dims.rope_theta, d, D
        self.gate = nn.Linear(D, d)
        self.value = nn.Linear(D, d, bias=False)
        self.layers = make_layers(config.layers, d, config.heads, config.kv_heads, config.ffn_dim, dims.norm_eps)
        self.norm = RMSNorm(d, dims.norm_eps)
        trunc_normal_(self.gate.weight, D**-0.5)
        trunc_normal_(self.value.weight, D**-0.5)
        nn.init.constant_(self.gate.bias, config.gate_bias)
        init_layers(self.layers, dims.init_std_factor)

    def describe_masks(self, layout: PatchLayout) -> dict[str, MaskDescription]:
        return {"self": local_block_causal(layout, self.config.window, self.config.block_documents)}

    def gate_and_value(self, patches_XG: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Global states ``[..., d_global]`` -> ``(sigmoid(W_g g + beta), W_v g)``, each ``[..., d]``."""
        return torch.sigmoid(self.gate(patches_XG)), self.value(patches_XG)

    def forward(self, bytes_BND: torch.Tensor, patches_BPG: torch.Tensor, layout: PatchLayout,
                attends: dict[str, Attend]) -> torch.Tensor:
        """``(encoder byte states [B, N, d], global states [B, P, d_global]) -> normed states [B, N, d]``."""
        gate_BPD, value_BPD = self.gate_and_value(patches_BPG)  # once per patch, then gathered to the bytes
        ids_BN = layout.decoder_patch_ids_BN
        h_BND = bytes_BND * gather_patches(gate_BPD, ids_BN) + gather_patches(value_BPD, ids_BN)
        return self.run_layers(h_BND, attends["self"])

    def run_layers(self, h_BND: torch.Tensor, attend: Attend) -> torch.Tensor:
        rope = rope_for(h_BND.shape[1], self.layers[0], self.rope_theta, h_BND.device)
        for layer in self.layers:
            h_BND = layer(h_BND, rope, attend)
        return self.norm(h_BND)

    def flops(self, n_bytes: float, n_patches: float, attention: str = "causal") -> dict[str, float]:
        """Forward FLOPs of one row (the model's lm_head is not included): W_g and W_v on the P
        patches (``2 * 2 P d_global d``, computed per patch, then gathered), the layers over N bytes."""
        N, P = float(n_bytes), float(n_patches)
        return {"decoder_gate": linear_flops(P, self.gate) + linear_flops(P, self.value),
                "local_decoder": layers_flops(self.layers, N, self.config.window, attention)}

    def incremental_step(self, batch: int, total: int, backend, like: torch.Tensor) -> GatedStep:
        return GatedStep(self, batch, total, backend, like)


class GatedStep:
    """``push(rows_C, pid_C, global_C1G)`` when a patch closes; ``step(bytes_B1D, t, read_B, doc_B) -> [B, 1, d]``.

    Byte t always reads its row's most recently closed patch, so one gate and one value per row suffice."""

    def __init__(self, decoder: GatedDecoder, batch: int, total: int, backend, like: torch.Tensor) -> None:
        from blt.generate.local_stack import LocalStack

        self.decoder = decoder
        self.stack = LocalStack(decoder.layers, decoder.config.window, decoder.rope_theta, batch, total, backend, like,
                                block_documents=decoder.config.block_documents)
        self.gate_B1D = torch.zeros(batch, 1, decoder.d, dtype=like.dtype, device=like.device)
        self.value_B1D = torch.zeros_like(self.gate_B1D)

    def push(self, rows_C: torch.Tensor, pid_C: torch.Tensor, global_C1G: torch.Tensor) -> None:
        self.gate_B1D[rows_C], self.value_B1D[rows_C] = self.decoder.gate_and_value(global_C1G)

    def step(self, bytes_B1D: torch.Tensor, t: int, read_B: torch.Tensor, doc_B: torch.Tensor) -> torch.Tensor:
        self.stack.begin(t, doc_B)
        h_B1D = bytes_B1D * self.gate_B1D + self.value_B1D
        for i in range(len(self.decoder.layers)):
            h_B1D = self.stack.layer(i, h_B1D)
        return self.decoder.norm(h_B1D)


@blt.hookimpl
def blt_register_decoders():
    return [DecoderSpec(name="gated", config_type=GatedDecoderConfig, build=GatedDecoder,  # masks: the class's
                        summary="byte state gated and shifted by the previous patch's global state")]
