"""``conv_pool``: a causal depthwise convolution over bytes, optional local layers, then a
learned-query attention pooling (or a gated mean) of each patch's bytes.

For byte t of a row (``x_t``: byte + hash n-gram embedding, width d = d_local)::

    u_t = RMSNorm(x_t)
    c_t = sum_{j<K} w_j * u_{t-j}            depthwise: one K-tap filter per channel, u_{<0} = 0
                                              (w_j = conv_weight[:, 0, K-1-j])
    h_t = x_t + W_c silu(c_t)                 the convolution block (residual)
    h_t <- local transformer layers (h_t)     ``layers`` of them (0: none)

The convolution stays inside the row (left zero padding); like the hash n-grams it may read
across an EOS. Patch p's vector, width ``out_dim`` (default d_global), from its bytes S_p::

    s_t = W_s h_t  (a row of W_s: one learned query per pooling head)   v_t = W_v h_t, split into the heads
    attention:   a_t = softmax_{t in S_p}(s_t)        gated_mean: a_t = sigmoid(s_t) / sum_{S_p} sigmoid(s)
    patch_p = sum_{t in S_p} a_t v_t                  (a patch with no bytes is 0)

Cached generation (:class:`ConvPoolStep`) keeps the last K normed embeddings for the convolution,
a windowed KV cache for the layers and the final states of each row's open patch.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from msgspec import Meta
from torch import nn

import blt
from blt.core.config import PositiveInt
from blt.core.errors import ConfigError
from blt.core.specs import EncoderSpec
from blt.flops import layers_flops, linear_flops
from blt.model.blocks import Attend, RMSNorm, trunc_normal_
from blt.model.byte_embedding import embed_bytes, make_embeddings
from blt.model.config import LocalEncoderConfig, SharedDims
from blt.model.layout import PatchLayout
from blt.model.local import check_heads, init_layers, make_layers, rope_for
from blt.attention.masks import LOCAL_BLOCK_CAUSAL, MaskDescription, local_block_causal


class ConvPoolEncoderConfig(LocalEncoderConfig, tag="conv_pool"):
    layers: Annotated[int, Meta(ge=0)] = 1      # local transformer layers after the convolution (0: none)
    kernel: PositiveInt = 4                     # convolution taps K: byte t reads bytes t-K+1..t
    pool: Literal["attention", "gated_mean"] = "attention"
    pool_heads: PositiveInt = 2                 # scores per byte; each head pools out_dim / pool_heads channels
    out_dim: PositiveInt | None = None          # patch vector width; None: d_global


class ConvPoolEncoder(nn.Module):
    mask_kinds = frozenset({LOCAL_BLOCK_CAUSAL})

    def __init__(self, config: ConvPoolEncoderConfig, dims: SharedDims) -> None:
        super().__init__()
        d = dims.d_local
        if config.layers:
            check_heads("$.encoder", d, config.heads, config.kv_heads)
        self.out_dim = config.out_dim or dims.d_global
        if self.out_dim % config.pool_heads:
            raise ConfigError(f"$.encoder.pool_heads: {config.pool_heads} heads do not divide out_dim = {self.out_dim}")
        self.config, self.rope_theta, self.d = config, dims.rope_theta, d
        self.embed_tokens, self.hash_embeddings = make_embeddings(config, d)
        self.conv_norm = RMSNorm(d, dims.norm_eps)
        self.conv_weight = nn.Parameter(torch.empty(d, 1, config.kernel))   # depthwise: [channels, 1, K]
        self.conv_out = nn.Linear(d, d, bias=False)
        self.layers = make_layers(config.layers, d, config.heads, config.kv_heads, config.ffn_dim, dims.norm_eps)
        self.score = nn.Linear(d, config.pool_heads, bias=False)
        self.value = nn.Linear(d, self.out_dim, bias=False)
        trunc_normal_(self.conv_weight, config.kernel**-0.5)
        for linear in (self.conv_out, self.score, self.value):
            trunc_normal_(linear.weight, d**-0.5)
        init_layers(self.layers, dims.init_std_factor)

    def describe_masks(self, layout: PatchLayout) -> dict[str, MaskDescription]:
        if not self.config.layers:
            return {}
        return {"self": local_block_causal(layout, self.config.window, self.config.block_documents)}

    def conv_block(self, x_BND: torch.Tensor, u_BDK: torch.Tensor) -> torch.Tensor:
        """``x + W_c silu(conv(u))``; ``u_BDK``: normed embeddings, channels first, K - 1 left context included."""
        c_BDN = F.conv1d(u_BDK, self.conv_weight, groups=self.d)
        return x_BND + self.conv_out(F.silu(c_BDN.transpose(1, 2)))

    def forward(self, tokens_BN: torch.Tensor, layout: PatchLayout, attends: dict[str, Attend]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ``(byte states [B, N, d_local], patch vectors [B, P, out_dim])``."""
        x_BND = embed_bytes(tokens_BN, self.embed_tokens, self.hash_embeddings)
        u_BDN = F.pad(self.conv_norm(x_BND).transpose(1, 2), (self.config.kernel - 1, 0))  # causal: zeros on the left
        h_BND = self.conv_block(x_BND, u_BDN)
        if self.config.layers:
            rope = rope_for(h_BND.shape[1], self.layers[0], self.rope_theta, h_BND.device)
            for layer in self.layers:
                h_BND = layer(h_BND, rope, attends["self"])
        return h_BND, self.pool(h_BND, layout.patch_ids_BN, layout.num_patches)

    def pool(self, h_BND: torch.Tensor, patch_ids_BN: torch.Tensor, num_patches: int) -> torch.Tensor:
        """Per-patch pooled vectors ``[B, P, out_dim]`` of byte states grouped by ``patch_ids``."""
        B, N, _ = h_BND.shape
        H = self.config.pool_heads
        s_BNH = self.score(h_BND)
        v_BNHE = self.value(h_BND).view(B, N, H, self.out_dim // H)
        index_BNH = patch_ids_BN.unsqueeze(-1).expand(B, N, H)
        if self.config.pool == "attention":  # softmax within each patch, shifted by the patch maximum
            max_BPH = s_BNH.new_zeros(B, num_patches, H).scatter_reduce(1, index_BNH, s_BNH.detach(), "amax", include_self=False)
            w_BNH = torch.exp(s_BNH - max_BPH.gather(1, index_BNH))
        else:
            w_BNH = torch.sigmoid(s_BNH)
        total_BPH = s_BNH.new_zeros(B, num_patches, H).scatter_add(1, index_BNH, w_BNH)
        index_BNHE = index_BNH.unsqueeze(-1).expand_as(v_BNHE)
        sum_BPHE = v_BNHE.new_zeros(B, num_patches, H, v_BNHE.shape[-1]).scatter_add(1, index_BNHE, w_BNH.unsqueeze(-1) * v_BNHE)
        out_BPHE = sum_BPHE / total_BPH.clamp(min=torch.finfo(total_BPH.dtype).tiny).unsqueeze(-1)  # empty patch: 0 / tiny
        return out_BPHE.reshape(B, num_patches, self.out_dim)

    def flops(self, n_bytes: float, n_patches: float, attention: str = "causal") -> dict[str, float]:
        """Forward FLOPs of one row: the convolution ``2 N K d``, ``W_c``, the layers; the pooling's
        scores and values (``2 N d (heads + out_dim)``; the weighted sums are not matrix products)."""
        N = float(n_bytes)
        conv = 2 * N * self.config.kernel * self.d + linear_flops(N, self.conv_out)
        return {"local_encoder": conv + layers_flops(self.layers, N, self.config.window, attention),
                "encoder_pooling": linear_flops(N, self.score) + linear_flops(N, self.value)}

    def incremental_step(self, batch: int, total: int, backend, like: torch.Tensor) -> ConvPoolStep:
        return ConvPoolStep(self, batch, total, backend, like)


class ConvPoolStep:
    """``step(tokens_B, t, pid_B, doc_B) -> [B, 1, d_local]``; ``close(rows_C) -> [C, 1, out_dim]``."""

    def __init__(self, encoder: ConvPoolEncoder, batch: int, total: int, backend, like: torch.Tensor) -> None:
        from blt.generate.local_stack import LocalStack

        self.encoder, cfg, device = encoder, encoder.config, like.device
        self.stack = None
        if cfg.layers:
            self.stack = LocalStack(encoder.layers, cfg.window, encoder.rope_theta, batch, total, backend, like,
                                    block_documents=cfg.block_documents)
        hashed = encoder.hash_embeddings is not None
        self.recent_BG = torch.zeros(batch, max(encoder.hash_embeddings.group_sizes) if hashed else 1,
                                     dtype=torch.long, device=device)               # token 0 before the row, as the model pads
        self.u_BDK = torch.zeros(batch, encoder.d, cfg.kernel, dtype=like.dtype, device=device)  # last K normed embeddings
        self.states: list[torch.Tensor] = []       # final states [B, d] of positions base.. (every row's open patch)
        self.pids: list[torch.Tensor] = []
        self.base = 0
        self.prev_pid_B = torch.full((batch,), -1, dtype=torch.long, device=device)
        self.start_B = torch.zeros(batch, dtype=torch.long, device=device)   # first byte of each row's open patch

    def step(self, tokens_B: torch.Tensor, t: int, pid_B: torch.Tensor, doc_B: torch.Tensor) -> torch.Tensor:
        enc = self.encoder
        self.recent_BG = torch.cat([self.recent_BG[:, 1:], tokens_B[:, None]], dim=1)
        x_B1D = embed_bytes(self.recent_BG, enc.embed_tokens, enc.hash_embeddings)[:, -1:]
        self.u_BDK = torch.cat([self.u_BDK[:, :, 1:], enc.conv_norm(x_B1D).transpose(1, 2)], dim=2)
        h_B1D = enc.conv_block(x_B1D, self.u_BDK)
        if self.stack is not None:
            self.stack.begin(t, doc_B)
            for i in range(len(enc.layers)):
                h_B1D = self.stack.layer(i, h_B1D)
        self.start_B = torch.where(pid_B != self.prev_pid_B, t, self.start_B)
        self.prev_pid_B = pid_B
        self.states.append(h_B1D[:, 0])
        self.pids.append(pid_B)
        drop = int(self.start_B.min()) - self.base   # no open patch needs positions before its start
        if drop > 0:
            del self.states[:drop], self.pids[:drop]
            self.base += drop
        return h_B1D

    def close(self, rows_C: torch.Tensor) -> torch.Tensor:
        """Vectors of the patches that close at this byte (rows ``rows_C``), from their bytes' states."""
        lo = int(self.start_B[rows_C].min()) - self.base
        states_CLD = torch.stack(self.states[lo:], dim=1)[rows_C]
        ids_CL = torch.stack(self.pids[lo:], dim=1)[rows_C]
        others_CL = (ids_CL != self.prev_pid_B[rows_C, None]).long()  # 0: the closing patch, 1: earlier bytes
        return self.encoder.pool(states_CLD, others_CL, 2)[:, :1]


@blt.hookimpl
def blt_register_encoders():
    return [EncoderSpec(name="conv_pool", config_type=ConvPoolEncoderConfig, build=ConvPoolEncoder,  # masks: the class's
                        summary="causal depthwise byte convolution (+ local layers), attention pooling per patch")]
