"""One byte position through a windowed local stack (encoder or decoder layers) with a ring cache.

Rows advance in lockstep, so at step t every row is at byte position t: one RoPE table, one ring
slot ``t % C`` and one mask description (over the kept keys' positions and document ids) serve
every layer of the stack. The mask is the model's ``local_block_causal`` rule: causal, same
document (EOS count strictly before), at most ``window`` bytes back.
"""

from __future__ import annotations

import torch
from torch import nn

from blt.generate.caches import attend_for, local_store
from blt.attention.backend import AttentionBackend
from blt.model.blocks import rope_angles
from blt.attention.masks import LOCAL_BLOCK_CAUSAL


class LocalStack:
    """``begin(t, doc_B)`` once per step, then ``layer(i, h_B1D)`` for each layer in order."""

    def __init__(self, layers: nn.ModuleList, window: int | None, rope_theta: float, batch: int, total: int,
                 backend: AttentionBackend, like: torch.Tensor, block_documents: bool = True) -> None:
        self.layers, self.window, self.rope_theta, self.backend = layers, window, rope_theta, backend
        self.block_documents = block_documents
        self.store = local_store(list(layers), batch, window, total, like)
        self.rows_B = torch.arange(batch, device=like.device)
        self.head_dim = layers[0].self_attn.head_dim

    def begin(self, t: int, doc_B: torch.Tensor) -> None:
        if not self.block_documents:  # one document: attention crosses EOS, as the config asks
            doc_B = torch.zeros_like(doc_B)
        C = self.store.capacity
        B = self.rows_B.shape[0]
        pos_B = torch.full((B,), t, dtype=torch.long, device=doc_B.device)
        self.store.begin(self.rows_B, torch.full_like(pos_B, t % C), pos_B, doc_B, used=min(C, t + 1))
        kv_pos_BK, kv_doc_BK = self.store.key_positions()
        self.attend = attend_for(self.backend, LOCAL_BLOCK_CAUSAL, pos_B[:, None], kv_pos_BK, doc_B[:, None], kv_doc_BK,
                                 self.window)
        self.rope = rope_angles(pos_B[:1], self.head_dim, self.rope_theta)  # (1, hd): same position in every row

    def layer(self, i: int, h_B1D: torch.Tensor) -> torch.Tensor:
        return self.layers[i](h_B1D, self.rope, self.attend, self.store.layer(i))


class ByteHistory:
    """Per-position byte states ``[B, S, d]`` and patch ids ``[B]`` of recent positions (all rows).

    Kept back to the oldest byte that an open patch (and its cross-attention window) still needs,
    so it holds about ``window`` patches of bytes, not the whole sequence.
    """

    def __init__(self) -> None:
        self.base = 0
        self.states: list[torch.Tensor] = []
        self.patch_ids: list[torch.Tensor] = []

    def append(self, states_BSD: torch.Tensor, patch_ids_B: torch.Tensor) -> None:
        self.states.append(states_BSD)
        self.patch_ids.append(patch_ids_B)

    def span(self, lo: int, rows_R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(states [R, L, S, d], patch ids [R, L])`` of positions ``lo ..`` the newest."""
        i = lo - self.base
        states_BLSD = torch.stack(self.states[i:], dim=1)
        ids_BL = torch.stack(self.patch_ids[i:], dim=1)
        return states_BLSD[rows_R], ids_BL[rows_R]

    def trim(self, lo: int) -> None:
        """Forget positions before ``lo``."""
        drop = lo - self.base
        if drop > 0:
            del self.states[:drop], self.patch_ids[:drop]
            self.base = lo
