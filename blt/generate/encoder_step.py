"""The local encoder, one byte at a time, and each patch's vector once the patch closes.

Byte states do not depend on patching (the encoder's self-attention sees bytes only), so each new
byte runs through the encoder layers with a windowed cache. A patch vector depends on all of the
patch's bytes, so it is computed when the patch closes (when the next position starts a new
patch), from the stored states of its bytes:

- ``cross_attention``: per-patch max pooling, ``d -> k d`` projection, then the cross-attention
  layers over the bytes of patches ``p - W + 1 .. p`` (``cross_window`` W) with the double
  residual, exactly as :class:`blt.plugins.encoders.cross_attention.CrossAttentionEncoder`;
- ``pooling``: mean or max of the patch's final byte states.

Hash n-gram embeddings need only the last ``max(hash_sizes)`` tokens (zero before position 0, as
the model's left padding).
"""

from __future__ import annotations

import torch
from torch import nn

from blt.core.errors import UnavailableError
from blt.generate.caches import attend_for
from blt.generate.local_stack import ByteHistory, LocalStack
from blt.model.attention import AttentionBackend
from blt.model.byte_embedding import embed_bytes
from blt.model.masks import BYTE_TO_PATCH
from blt.model.patch_ops import from_slots, pool_patches, to_slots


class EncoderStep:
    """Shared part: embeddings, the cached layer stack, the history of byte states and patch starts."""

    def __init__(self, encoder: nn.Module, recorded_layers: int, window: int, batch: int, total: int,
                 backend: AttentionBackend, like: torch.Tensor) -> None:
        self.encoder, self.backend, self.window = encoder, backend, window
        self.recorded_from = len(encoder.layers) - recorded_layers  # states of layers >= this are kept
        cfg = encoder.config
        self.stack = LocalStack(encoder.layers, cfg.window, encoder.rope_theta, batch, total, backend, like,
                                block_documents=cfg.block_documents)
        hashed = encoder.hash_embeddings is not None
        self.recent_BG = torch.zeros(batch, max(encoder.hash_embeddings.group_sizes) if hashed else 1,
                                     dtype=torch.long, device=like.device)
        self.history = ByteHistory()
        self.rows_B = torch.arange(batch, device=like.device)
        self.prev_pid_B = torch.full((batch,), -1, dtype=torch.long, device=like.device)
        self.starts_BW = torch.zeros(batch, window, dtype=torch.long, device=like.device)  # start of patch q at q % W
        self.oldest_B = torch.zeros(batch, dtype=torch.long, device=like.device)

    def step(self, tokens_B: torch.Tensor, t: int, pid_B: torch.Tensor, doc_B: torch.Tensor) -> torch.Tensor:
        """Byte t of every row (in patch ``pid_B``) -> its final encoder state ``[B, 1, d]``."""
        self.recent_BG = torch.cat([self.recent_BG[:, 1:], tokens_B[:, None]], dim=1)
        h_B1D = embed_bytes(self.recent_BG, self.encoder.embed_tokens, self.encoder.hash_embeddings)[:, -1:]
        self.stack.begin(t, doc_B)
        kept = []
        for i in range(len(self.encoder.layers)):
            h_B1D = self.stack.layer(i, h_B1D)
            if i >= self.recorded_from:
                kept.append(h_B1D[:, 0])
        slot_B = pid_B % self.window
        new_B = pid_B != self.prev_pid_B
        self.starts_BW[self.rows_B, slot_B] = torch.where(new_B, t, self.starts_BW[self.rows_B, slot_B])
        self.prev_pid_B = pid_B
        self.history.append(torch.stack(kept, dim=1), pid_B)
        first_needed_B = (pid_B - self.window + 1).clamp(min=0) % self.window
        self.oldest_B = self.starts_BW[self.rows_B, first_needed_B]
        self.history.trim(int(self.oldest_B.min()))
        return h_B1D

    def closing_span(self, rows_C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For rows whose patch closes at this byte: ``(states [C, L, S, d], patch ids [C, L], own patch [C])``."""
        lo = int(self.oldest_B[rows_C].min())
        states_CLSD, ids_CL = self.history.span(lo, rows_C)
        return states_CLSD, ids_CL, self.prev_pid_B[rows_C]


class CrossAttentionEncoderStep(EncoderStep):
    def __init__(self, encoder: nn.Module, batch: int, total: int, backend: AttentionBackend, like: torch.Tensor) -> None:
        super().__init__(encoder, len(encoder.cross_attn_layers), encoder.config.cross_window, batch, total, backend, like)

    def close(self, rows_C: torch.Tensor) -> torch.Tensor:
        """Patch vectors ``[C, 1, k d]`` of the patches that close at this byte."""
        enc, k = self.encoder, self.encoder.config.k
        states_CLSD, ids_CL, pid_C = self.closing_span(rows_C)
        others_CL = (ids_CL != pid_C[:, None]).long()  # 0: the closing patch's own bytes
        q_pos_CK = pid_C[:, None].expand(-1, k)
        attend = attend_for(self.backend, BYTE_TO_PATCH, q_pos_CK, ids_CL, window=self.window)
        slots_CKD = None
        for j, cross in enumerate(enc.cross_attn_layers):
            h_CLD = states_CLSD[:, :, j]
            if slots_CKD is None or enc.config.repool:
                pooled_C1D = pool_patches(h_CLD, others_CL, 2, "max")[:, :1]
                slots_CKD = to_slots(enc.patch_embedding_projection(pooled_C1D), k)
            slots_CKD = slots_CKD + cross(slots_CKD, h_CLD, attend)
        return from_slots(slots_CKD, k)


class PoolingEncoderStep(EncoderStep):
    def __init__(self, encoder: nn.Module, batch: int, total: int, backend: AttentionBackend, like: torch.Tensor) -> None:
        super().__init__(encoder, 1, 1, batch, total, backend, like)

    def close(self, rows_C: torch.Tensor) -> torch.Tensor:
        states_CLSD, ids_CL, pid_C = self.closing_span(rows_C)
        others_CL = (ids_CL != pid_C[:, None]).long()
        return pool_patches(states_CLSD[:, :, 0], others_CL, 2, self.encoder.config.mode)[:, :1]


def encoder_step(encoder: nn.Module, batch: int, total: int, backend: AttentionBackend, like: torch.Tensor) -> EncoderStep:
    """The incremental form of a builtin encoder; other encoders are refused (use cache=False)."""
    from blt.plugins.encoders.cross_attention import CrossAttentionEncoder
    from blt.plugins.encoders.pooling import PoolingEncoder

    if isinstance(encoder, CrossAttentionEncoder):
        return CrossAttentionEncoderStep(encoder, batch, total, backend, like)
    if isinstance(encoder, PoolingEncoder):
        return PoolingEncoderStep(encoder, batch, total, backend, like)
    raise UnavailableError(f"cached generation has no incremental form of encoder {type(encoder).__name__} "
                           "(builtin: cross_attention, pooling); use cache=False (--no-cache)")
