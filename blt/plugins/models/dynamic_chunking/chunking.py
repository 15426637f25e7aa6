"""Chunking (keep the states at boundaries) and dechunking (EMA smoothing over chunks, then causal
upsampling), as in H-Net (arXiv 2507.07955, sec. 2.2).

Chunk ``c`` of a row starts at its ``c``-th boundary ``s_c``; its state is the encoder state at
``s_c``, so it depends on positions ``<= s_c`` only. Rows have different chunk counts: the batch's
chunk axis is padded to the largest, pad slots after a row's real chunks (each its own document,
so causal attention keeps them out of every real chunk).

Dechunking smooths the main network's chunk outputs with the router's probabilities,
``z_c = P_c zhat_c + (1 - P_c) z_{c-1}`` (``P_c`` = ``p`` at the chunk's start; a document's first
chunk has ``P = 1``, so the smoothing restarts there), then position ``t`` takes ``z`` of the most
recent chunk that started at or before ``t``: chunk ``cumsum(b)_t - 1``, never a later one.
"""

from __future__ import annotations

import attrs
import torch


@attrs.frozen(eq=False)
class Chunks:
    """Where each row's chunks start and which chunk each position belongs to.

    ``start_BM``: position of chunk c's first element (0 in pad slots); ``real_BM``: slot holds a
    chunk; ``chunk_of_BL``: the chunk of each position (the last boundary at or before it)."""

    start_BM: torch.Tensor
    real_BM: torch.Tensor
    chunk_of_BL: torch.Tensor

    @property
    def count_B(self) -> torch.Tensor:
        return self.real_BM.sum(1)

    def gather(self, x_BL: torch.Tensor) -> torch.Tensor:
        """``x`` at each chunk's start: ``[B, L]`` -> ``[B, M]``, ``[B, L, D]`` -> ``[B, M, D]``."""
        if x_BL.dim() == 2:
            return torch.gather(x_BL, 1, self.start_BM)
        return torch.gather(x_BL, 1, self.start_BM.unsqueeze(-1).expand(-1, -1, x_BL.shape[-1]))

    def upsample(self, z_BMD: torch.Tensor) -> torch.Tensor:
        """``[B, M, D]`` -> ``[B, L, D]``: each position gets its chunk's vector."""
        return torch.gather(z_BMD, 1, self.chunk_of_BL.unsqueeze(-1).expand(-1, -1, z_BMD.shape[-1]))


def make_chunks(b_BL: torch.Tensor) -> Chunks:
    """Chunks from boundaries ``b_BL`` (position 0 of every row must be a boundary)."""
    B, L = b_BL.shape
    chunk_of_BL = torch.cumsum(b_BL.long(), 1) - 1
    M = int(b_BL.sum(1).max()) if B else 0
    # scatter each boundary's position into its chunk slot; non-boundaries go to a dump column M
    slot_BL = torch.where(b_BL, chunk_of_BL, torch.full_like(chunk_of_BL, M))
    pos_BL = torch.arange(L, device=b_BL.device).expand(B, L)
    start = torch.zeros(B, M + 1, dtype=torch.long, device=b_BL.device).scatter_(1, slot_BL, pos_BL)[:, :M]
    real = torch.arange(M, device=b_BL.device)[None, :] < b_BL.sum(1, keepdim=True)
    return Chunks(start, real, chunk_of_BL)


def ema_smooth(zhat_BMD: torch.Tensor, P_BM: torch.Tensor) -> torch.Tensor:
    """``z_c = P_c zhat_c + (1 - P_c) z_{c-1}`` (``z_{-1} = 0``), a scan over the chunk axis.

    Elementwise only (no matmul FLOPs); exact, with no cumulative products that could underflow."""
    P_BM1 = P_BM.unsqueeze(-1).to(zhat_BMD.dtype)
    out, prev = [], torch.zeros_like(zhat_BMD[:, 0]) if zhat_BMD.shape[1] else None
    for c in range(zhat_BMD.shape[1]):
        prev = P_BM1[:, c] * zhat_BMD[:, c] + (1 - P_BM1[:, c]) * prev
        out.append(prev)
    return torch.stack(out, 1) if out else zhat_BMD


def chunk_documents(chunks: Chunks, doc_BL: torch.Tensor) -> torch.Tensor:
    """Each chunk's document (its first position's); pad slots get documents of their own
    (beyond every real one), so they attend only to themselves."""
    doc_BM = chunks.gather(doc_BL)
    M = doc_BM.shape[1]
    own = doc_BL.max() + 1 + torch.arange(M, device=doc_BL.device)[None, :] if doc_BL.numel() else doc_BM
    return torch.where(chunks.real_BM, doc_BM, own)


def document_starts(doc_BL: torch.Tensor) -> torch.Tensor:
    """True at position 0 and wherever the document id changes."""
    first = torch.ones_like(doc_BL[:, :1], dtype=torch.bool)
    return torch.cat([first, doc_BL[:, 1:] != doc_BL[:, :-1]], dim=1)


__all__ = ["Chunks", "chunk_documents", "document_starts", "ema_smooth", "make_chunks"]
