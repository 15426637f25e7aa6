"""``chunked``: exact attention in query chunks with a streaming (online) softmax over key blocks.

For each chunk of ``query_chunk`` queries the keys are visited ``key_block`` at a time; a running
row maximum ``m``, normaliser ``l`` and weighted value sum ``acc`` are rescaled as each block
arrives (Milakov & Gimelshein 2018, "Online normalizer calculation for softmax")::

    m' = max(m, max_j s_j)      l' = l e^(m - m') + sum_j e^(s_j - m')
    acc' = acc e^(m - m') + sum_j e^(s_j - m') v_j          o = acc / l

so no ``[Q, K]`` score matrix larger than one chunk x one block is ever held. Disallowed pairs get
score ``-inf`` (weight exactly 0). A row with no allowed key keeps ``l = 0`` and outputs zeros (the
library-wide convention). The mask is the description's dense boolean form, so every mask kind is
supported; the maths is plain autograd, so it trains on any device. Arithmetic is float32 (float64
inputs stay float64).
"""

from __future__ import annotations

import torch

import blt
from blt.core.config import AttentionConfig, PositiveInt
from blt.core.specs import AttentionSpec
from blt.attention.backend import check_kind, dense_mask
from blt.attention.masks import MASK_KINDS, MaskDescription


class ChunkedConfig(AttentionConfig, tag="chunked"):
    query_chunk: PositiveInt = 64   # queries per chunk
    key_block: PositiveInt = 64     # keys per streaming-softmax step


class ChunkedAttention:
    name = "chunked"
    mask_kinds = MASK_KINDS

    def __init__(self, config: ChunkedConfig | None = None) -> None:
        self.config = config or ChunkedConfig()

    def prepare(self, mask: MaskDescription) -> torch.Tensor:
        """The dense ``BoolTensor[B, 1, Q, K]`` of allowed pairs (head dimension broadcast)."""
        check_kind(self, mask)
        return dense_mask(mask)[0]

    def attend(self, q_BHQD: torch.Tensor, k_BHKD: torch.Tensor, v_BHKD: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        allowed_B1QK = prepared
        work = torch.promote_types(q_BHQD.dtype, torch.float32)
        q, k, v = q_BHQD.to(work), k_BHKD.to(work), v_BHKD.to(work)
        scale = q.shape[-1] ** -0.5
        Q, K = q.shape[2], k.shape[2]
        chunks = []
        for qs in range(0, Q, self.config.query_chunk):
            qe = min(qs + self.config.query_chunk, Q)
            chunks.append(self._chunk(q[:, :, qs:qe] * scale, k, v, allowed_B1QK[:, :, qs:qe], K))
        return torch.cat(chunks, dim=2).to(q_BHQD.dtype)

    def _chunk(self, q_BHCD: torch.Tensor, k_BHKD: torch.Tensor, v_BHKD: torch.Tensor, allowed_B1CK: torch.Tensor,
               K: int) -> torch.Tensor:
        B, H, C, _ = q_BHCD.shape
        m_BHC1 = q_BHCD.new_full((B, H, C, 1), float("-inf"))
        l_BHC1 = q_BHCD.new_zeros((B, H, C, 1))
        acc_BHCD = q_BHCD.new_zeros((B, H, C, v_BHKD.shape[-1]))
        for ks in range(0, K, self.config.key_block):
            ke = min(ks + self.config.key_block, K)
            s_BHCJ = q_BHCD @ k_BHKD[:, :, ks:ke].transpose(-1, -2)
            s_BHCJ = s_BHCJ.masked_fill(~allowed_B1CK[..., ks:ke], float("-inf"))
            # The softmax is invariant to the shift, so it carries no gradient (detach: no inf - inf in backward).
            m_new_BHC1 = torch.maximum(m_BHC1, s_BHCJ.amax(-1, keepdim=True)).detach()
            shift_BHC1 = torch.where(torch.isinf(m_new_BHC1), torch.zeros_like(m_new_BHC1), m_new_BHC1)
            p_BHCJ = torch.exp(s_BHCJ - shift_BHC1)            # disallowed: exp(-inf) = 0
            rescale_BHC1 = torch.exp(m_BHC1 - shift_BHC1)      # first block: exp(-inf) = 0
            l_BHC1 = l_BHC1 * rescale_BHC1 + p_BHCJ.sum(-1, keepdim=True)
            acc_BHCD = acc_BHCD * rescale_BHC1 + p_BHCJ @ v_BHKD[:, :, ks:ke]
            m_BHC1 = m_new_BHC1
        has_key_BHC1 = l_BHC1 > 0
        return torch.where(has_key_BHC1, acc_BHCD / torch.where(has_key_BHC1, l_BHC1, torch.ones_like(l_BHC1)), 0.0)

    def can_train(self, device: torch.device | str) -> str | None:
        return None


@blt.hookimpl
def blt_register_attention():
    return [AttentionSpec(name="chunked", config_type=ChunkedConfig, build=ChunkedAttention,  # masks: the class's
                          summary="exact attention in query chunks, streaming softmax over key blocks")]
