"""``cross_attention``: the BLT local decoder.

Its byte stream is the encoder's final byte states. The global patch states are projected
``d_global -> k d_local`` into k key/value slots per patch; before each layer (or only the first)
byte t reads the slots of patch ``decoder_patch_ids[t] = P(t+1) - 1`` (``patch_to_byte``, double
residual ``h <- 2h + attn``), then a local self-attention layer runs. A final RMSNorm follows;
the model's ``lm_head`` turns the result into logits.

FLOPs (``D`` = d_global, ``C`` cross layers): the projection ``2 P D (k d)``; per cross layer
``q, o`` on ``N`` bytes, ``k, v`` on ``P k`` slots and attention over ``N k min(W, P)`` pairs (a
dense kernel computes ``N P k``); the local layers over ``N`` bytes. The head is the model's.

Incremental step: byte t reads the global state of patch ``d[t] = P(t+1) - 1``; after the patch
decision for position t + 1 this is always the row's most recently closed patch, so the step keeps
only the last ``W`` closed patches' projected slots in a small ring, and its self-attention layers
keep a windowed cache.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from blt.core.config import PositiveInt
from blt.core.hookspecs import hookimpl
from blt.core.specs import DecoderSpec
from blt.flops import cross_layer_flops, layers_flops, linear_flops
from blt.generate.caches import EMPTY
from blt.generate.fast_layers import FastCross, FastLinear, FastNorm
from blt.generate.local_stack import LocalStack, StackStep
from blt.model.blocks import Attend, RMSNorm, trunc_normal_
from blt.model.config import LocalDecoderConfig, SharedDims
from blt.model.cross_attention import CrossAttention
from blt.model.layout import PatchLayout
from blt.model.local import check_cross_heads, check_heads, depth_factor, init_layers, make_layers, rope_for
from blt.attention.masks import LOCAL_BLOCK_CAUSAL, PATCH_TO_BYTE, MaskDescription, local_block_causal, patch_to_byte
from blt.model.patch_ops import to_slots


class CrossAttentionDecoderConfig(LocalDecoderConfig, tag="cross_attention"):
    k: PositiveInt = 2                  # key/value slots per patch
    cross_heads: PositiveInt = 4
    cross_all_layers: bool = True       # cross-attention before every layer, else before the first only
    cross_window: PositiveInt = 1       # byte t reads patches d[t]-W+1..d[t] (1: only d[t])


class CrossAttentionDecoder(nn.Module):
    def __init__(self, config: CrossAttentionDecoderConfig, dims: SharedDims) -> None:
        super().__init__()
        d = dims.d_local
        check_heads("$.decoder", d, config.heads, config.kv_heads)
        check_cross_heads("$.decoder", d, config.cross_heads)
        self.config, self.rope_theta = config, dims.rope_theta
        self.patch_embedding_projection = nn.Linear(dims.d_global, config.k * d, bias=False)
        n_cross = config.layers if config.cross_all_layers else 1
        self.cross_attn_layers = nn.ModuleList(CrossAttention(d, config.cross_heads, dims.norm_eps) for _ in range(n_cross))
        self.layers = make_layers(config.layers, d, config.heads, config.kv_heads, config.ffn_dim, dims.norm_eps)
        self.norm = RMSNorm(d, dims.norm_eps)
        trunc_normal_(self.patch_embedding_projection.weight, dims.d_global**-0.5)
        for j, cross in enumerate(self.cross_attn_layers):
            cross.init_weights(depth_factor(dims.init_std_factor, j, n_cross, d))
        init_layers(self.layers, dims.init_std_factor)

    mask_kinds = frozenset({LOCAL_BLOCK_CAUSAL, PATCH_TO_BYTE})

    def flops(self, n_bytes: float, n_patches: float, attention: str = "causal") -> dict[str, float]:
        cfg, d = self.config, self.norm.weight.numel()
        N, P = float(n_bytes), float(n_patches)
        pairs = N * P * cfg.k if attention == "dense" else N * cfg.k * min(cfg.cross_window, P)
        return {"decoder_cross_attention": linear_flops(P, self.patch_embedding_projection)
                + len(self.cross_attn_layers) * cross_layer_flops(N, P * cfg.k, d, pairs),
                "local_decoder": layers_flops(self.layers, N, cfg.window, attention)}

    def incremental_step(self, batch: int, total: int, backend: Any, like: torch.Tensor) -> CrossAttentionDecoderStep:
        return CrossAttentionDecoderStep(self, batch, total, backend, like)

    def describe_masks(self, layout: PatchLayout) -> dict[str, MaskDescription]:
        return {"self": local_block_causal(layout, self.config.window, self.config.block_documents),
                "cross": patch_to_byte(layout, self.config.k, self.config.cross_window)}

    def forward(self, bytes_BND: torch.Tensor, patches_BPG: torch.Tensor, layout: PatchLayout,
                attends: dict[str, Attend]) -> torch.Tensor:
        """``(encoder byte states [B, N, d], global states [B, P, d_global]) -> normed states [B, N, d]``."""
        slots_BSD = to_slots(self.patch_embedding_projection(patches_BPG), self.config.k)  # (B, P*k, d)
        rope = rope_for(bytes_BND.shape[1], self.layers[0], self.rope_theta, bytes_BND.device)
        h_BND = bytes_BND
        for i, layer in enumerate(self.layers):
            if i < len(self.cross_attn_layers):
                h_BND = h_BND + self.cross_attn_layers[i](h_BND, slots_BSD, attends["cross"])
            h_BND = layer(h_BND, rope, attends["self"])
        return self.norm(h_BND)


class CrossAttentionDecoderStep(StackStep):
    def __init__(self, decoder: CrossAttentionDecoder, batch: int, total: int, backend: Any, like: torch.Tensor) -> None:
        cfg = decoder.config
        self.decoder, self.backend, self.k, self.window = decoder, backend, cfg.k, cfg.cross_window
        self.stack = LocalStack(decoder.layers, cfg.window, decoder.rope_theta, batch, total, backend, like,
                                block_documents=cfg.block_documents)
        self.final_norm = FastNorm(decoder.norm)
        d = decoder.norm.weight.numel()
        self.ring_BSD = torch.zeros(batch, self.window * self.k, d, dtype=like.dtype, device=like.device)
        self.ring_pos_BS = torch.full((batch, self.window * self.k), EMPTY, dtype=torch.long, device=like.device)
        self.offsets_K = torch.arange(self.k, device=like.device)
        # The slots' keys/values for every cross layer change only when a patch closes (push), so
        # they are computed there, not at every byte.
        self.fast_cross = [FastCross(cross) for cross in decoder.cross_attn_layers]
        self.project = FastLinear(decoder.patch_embedding_projection)
        # each cross layer's keys and values of every ring slot, [B, S, 2, H, hd]: a push writes
        # the new slots' rows in place, and cross_kv holds (k, v) views of them as [B, H, S, hd]
        self.kv_BS2HD = [cross.key_rows(self.ring_BSD) for cross in self.fast_cross]
        self.cross_kv = [(kv[:, :, 0].transpose(1, 2), kv[:, :, 1].transpose(1, 2)) for kv in self.kv_BS2HD]
        self.cross_mask = None
        self.all_filled = False

    def push(self, rows_C: torch.Tensor, pid_C: torch.Tensor, global_C1G: torch.Tensor) -> None:
        """Rows ``rows_C`` closed patch ``pid_C`` with global state ``global_C1G``."""
        slots_CKD = to_slots(self.project(global_C1G), self.k)
        S = self.ring_pos_BS.shape[1]
        flat_CK = (rows_C * S)[:, None] + (pid_C % self.window)[:, None] * self.k + self.offsets_K  # row-major slot
        d = self.ring_BSD.shape[-1]
        flat = flat_CK.view(-1)
        self.ring_BSD.view(-1, d).index_copy_(0, flat, slots_CKD.reshape(-1, d))
        for cross, kv in zip(self.fast_cross, self.kv_BS2HD):
            new = cross.key_rows(slots_CKD)
            kv.view(-1, *new.shape[2:]).index_copy_(0, flat, new.view(-1, *new.shape[2:]))
        # Byte t reads patches read - W + 1 .. read, its row's last W closed patches: exactly the
        # filled ring slots (every row has closed patch 0, BOS, before its first byte is decoded).
        # Once every slot is filled it stays so, and no mask is needed. (Each slot's patch id is
        # kept for verify.)
        self.ring_pos_BS.view(-1).index_copy_(0, flat_CK.view(-1), pid_C[:, None].expand_as(flat_CK).reshape(-1))
        if not self.all_filled:
            filled_BS = self.ring_pos_BS != EMPTY
            self.all_filled = bool(filled_BS.all())
            self.cross_mask = None if self.all_filled else filled_BS[:, None, None, :]

    def snapshot(self) -> tuple:
        """The state after the last ``step``/``push``, for :meth:`restore` (speculative decoding)."""
        return (self.stack.snapshot(), self.ring_BSD.clone(), self.ring_pos_BS.clone(),
                [kv.clone() for kv in self.kv_BS2HD], self.cross_mask, self.all_filled)

    def restore(self, mark: tuple) -> None:
        stack, ring, ring_pos, kv_rows, self.cross_mask, self.all_filled = mark
        self.stack.restore(stack)
        self.ring_BSD.copy_(ring)
        self.ring_pos_BS.copy_(ring_pos)
        for kv, saved in zip(self.kv_BS2HD, kv_rows):
            kv.copy_(saved)

    def verify(self, bytes_M1D: torch.Tensor, t0: int, doc_M: torch.Tensor, pushes: list, reads: list[int],
               row: int = 0) -> torch.Tensor:
        """Speculative decoding's verification and prompt prefill: positions ``t0 .. t0 + M - 1`` of
        row ``row`` in one pass -> normed decoder states ``[M, 1, d]``. ``pushes``: ``(position index, patch id, global
        state [1, 1, d_global])`` of the patches closing from t0 on, each pushed before the position
        it names; ``reads[i]``: the last patch position i reads. The cross-attention keys are the
        ring's slots and the pushed patches' slots, and query i is masked to patches
        ``reads[i] - W + 1 .. reads[i]``, what the ring holds at that position when stepping. The
        ring is left as it is: the caller pushes the patches it keeps."""
        M, W = bytes_M1D.shape[0], self.window
        ids_S = self.ring_pos_BS[row]  # the patch id of each ring slot (EMPTY: none yet)
        new_1SD = None
        if pushes:
            states_1MG = torch.cat([state for _, _, state in pushes], dim=1)
            new_1SD = to_slots(self.project(states_1MG), self.k)
            pids = torch.tensor([pid for _, pid, _ in pushes], dtype=torch.long, device=ids_S.device)
            ids_S = torch.cat([ids_S, pids.repeat_interleave(self.k)])
        reads_M1 = torch.tensor(reads, dtype=torch.long, device=ids_S.device)[:, None]
        mask = ((ids_S[None] <= reads_M1) & (ids_S[None] > reads_M1 - W))[None, None]
        keys = []
        for i, cross in enumerate(self.fast_cross):
            k, v = (t.narrow(0, row, 1) for t in self.cross_kv[i])
            if new_1SD is not None:
                k_new, v_new = cross.keys(new_1SD)
                k, v = torch.cat([k, k_new], dim=2), torch.cat([v, v_new], dim=2)
            keys.append((k, v))
        self.stack.begin_block(t0, doc_M, row)
        h_1MD = bytes_M1D.view(1, M, -1)
        for i in range(len(self.decoder.layers)):
            if i < len(self.fast_cross):  # the reference's double residual, as in step
                h_1MD = h_1MD + self.fast_cross[i](h_1MD, *keys[i], mask)
            h_1MD = self.stack.layer_block(i, h_1MD.view(M, -1)).view(1, M, -1)
        return self.final_norm(h_1MD[0])[:, None]

    def step(self, bytes_B1D: torch.Tensor, t: int, read_B: torch.Tensor, doc_B: torch.Tensor) -> torch.Tensor:
        """Encoder state of byte t ``[B, 1, d]``, patch it reads -> normed decoder state ``[B, 1, d]``."""
        self.stack.begin(t, doc_B)
        h_BD = bytes_B1D[:, 0]
        for i in range(len(self.decoder.layers)):
            if i < len(self.fast_cross):  # the reference's double residual: h <- h + (h + attn)
                h_BD = h_BD + self.fast_cross[i](h_BD, *self.cross_kv[i], self.cross_mask)
            h_BD = self.stack.layer(i, h_BD)
        return self.final_norm(h_BD)[:, None]


@hookimpl
def blt_register_decoders():
    return [DecoderSpec(name="cross_attention", config_type=CrossAttentionDecoderConfig, build=CrossAttentionDecoder,
                        summary="bytes cross-attend to the previous patch's global state, then local layers (BLT)")]
