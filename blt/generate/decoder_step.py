"""The local decoder, one byte at a time.

Byte t reads the global state of patch ``d[t] = P(t+1) - 1``: after the patch decision for
position t + 1 this is always the most recently closed patch of the row, so the decoder keeps only
the last ``cross_window`` (W) closed patches' projected states in a small ring; its self-attention
layers keep a windowed cache like the encoder's.

- ``cross_attention``: ``h <- h + CrossAttn(h, slots of patches d-W+1..d)`` before each (or the
  first) layer, as in :class:`blt.plugins.decoders.cross_attention.CrossAttentionDecoder`;
- ``add``: ``h <- h + proj(global state of d)`` once, then the layers.
"""

from __future__ import annotations

import torch
from torch import nn

from blt.core.errors import UnavailableError
from blt.generate.caches import EMPTY, attend_for
from blt.generate.local_stack import LocalStack
from blt.model.attention import AttentionBackend
from blt.model.masks import PATCH_TO_BYTE
from blt.model.patch_ops import to_slots


class CrossAttentionDecoderStep:
    def __init__(self, decoder: nn.Module, batch: int, total: int, backend: AttentionBackend, like: torch.Tensor) -> None:
        cfg = decoder.config
        self.decoder, self.backend, self.k, self.window = decoder, backend, cfg.k, cfg.cross_window
        self.stack = LocalStack(decoder.layers, cfg.window, decoder.rope_theta, batch, total, backend, like,
                                block_documents=cfg.block_documents)
        d = decoder.norm.weight.numel()
        self.ring_BSD = torch.zeros(batch, self.window * self.k, d, dtype=like.dtype, device=like.device)
        self.ring_pos_BS = torch.full((batch, self.window * self.k), EMPTY, dtype=torch.long, device=like.device)
        self.offsets_K = torch.arange(self.k, device=like.device)

    def push(self, rows_C: torch.Tensor, pid_C: torch.Tensor, global_C1G: torch.Tensor) -> None:
        """Rows ``rows_C`` closed patch ``pid_C`` with global state ``global_C1G``."""
        slots_CKD = to_slots(self.decoder.patch_embedding_projection(global_C1G), self.k)
        index_CK = (pid_C % self.window)[:, None] * self.k + self.offsets_K
        self.ring_BSD[rows_C[:, None], index_CK] = slots_CKD
        self.ring_pos_BS[rows_C[:, None], index_CK] = pid_C[:, None]

    def step(self, bytes_B1D: torch.Tensor, t: int, read_B: torch.Tensor, doc_B: torch.Tensor) -> torch.Tensor:
        """Encoder state of byte t ``[B, 1, d]``, patch it reads -> normed decoder state ``[B, 1, d]``."""
        self.stack.begin(t, doc_B)
        cross_attend = attend_for(self.backend, PATCH_TO_BYTE, read_B[:, None], self.ring_pos_BS, window=self.window)
        h_B1D = bytes_B1D
        for i in range(len(self.decoder.layers)):
            if i < len(self.decoder.cross_attn_layers):
                h_B1D = h_B1D + self.decoder.cross_attn_layers[i](h_B1D, self.ring_BSD, cross_attend)
            h_B1D = self.stack.layer(i, h_B1D)
        return self.decoder.norm(h_B1D)


class AddDecoderStep:
    def __init__(self, decoder: nn.Module, batch: int, total: int, backend: AttentionBackend, like: torch.Tensor) -> None:
        self.decoder = decoder
        self.stack = LocalStack(decoder.layers, decoder.config.window, decoder.rope_theta, batch, total, backend, like,
                                block_documents=decoder.config.block_documents)
        d = decoder.norm.weight.numel()
        self.latest_B1D = torch.zeros(batch, 1, d, dtype=like.dtype, device=like.device)

    def push(self, rows_C: torch.Tensor, pid_C: torch.Tensor, global_C1G: torch.Tensor) -> None:
        proj = self.decoder.patch_embedding_projection
        self.latest_B1D[rows_C] = proj(global_C1G) if proj is not None else global_C1G

    def step(self, bytes_B1D: torch.Tensor, t: int, read_B: torch.Tensor, doc_B: torch.Tensor) -> torch.Tensor:
        self.stack.begin(t, doc_B)
        h_B1D = bytes_B1D + self.latest_B1D
        for i in range(len(self.decoder.layers)):
            h_B1D = self.stack.layer(i, h_B1D)
        return self.decoder.norm(h_B1D)


def decoder_step(decoder: nn.Module, batch: int, total: int, backend: AttentionBackend, like: torch.Tensor):
    """The incremental form of a builtin decoder; other decoders are refused (use cache=False)."""
    from blt.plugins.decoders.add import AddDecoder
    from blt.plugins.decoders.cross_attention import CrossAttentionDecoder

    if isinstance(decoder, CrossAttentionDecoder):
        return CrossAttentionDecoderStep(decoder, batch, total, backend, like)
    if isinstance(decoder, AddDecoder):
        return AddDecoderStep(decoder, batch, total, backend, like)
    raise UnavailableError(f"cached generation has no incremental form of decoder {type(decoder).__name__} "
                           "(builtin: cross_attention, add); use cache=False (--no-cache)")
