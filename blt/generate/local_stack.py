"""One byte position through a windowed local stack (encoder or decoder layers) with a ring cache.

Rows advance in lockstep, so at step t every row is at byte position t: one RoPE rotation, one
ring slot ``t % C`` and one boolean mask serve every layer of the stack. The mask is the model's
``local_block_causal`` rule: causal, same document (EOS count strictly before), at most ``window``
bytes back. With ``C = min(window, total)`` slots, every filled slot holds one of the last ``C``
positions, all within the window and not after t, so only the document test remains (none when
the stack does not block documents). Layers run through :class:`blt.generate.fast_layers.FastLayer`.
"""

from __future__ import annotations

import torch
from torch import nn

from blt.generate.caches import local_store
from blt.generate.fast_layers import FastLayer
from blt.model.blocks import rope_angles


class LocalStack:
    """``begin(t, doc_B)`` once per step, then ``layer(i, h_BD)`` for each layer in order.

    Rewinding (speculative decoding): after :meth:`snapshot`, each ``begin`` first saves the ring
    slot it is about to overwrite (its keys, values and document ids in every layer), so
    :meth:`restore` can put back exactly the ring of the snapshot; :meth:`commit` forgets the saved
    slots and stops saving. Positions after the snapshot leave no trace once restored.
    """

    def __init__(self, layers: nn.ModuleList, window: int | None, rope_theta: float, batch: int, total: int,
                 backend: object, like: torch.Tensor, block_documents: bool = True) -> None:
        self.window, self.block_documents = window, block_documents
        self.store = local_store(list(layers), batch, window, total, like)
        self.fast = [FastLayer(layer) for layer in layers]
        self.head_dim, self.rope_theta = layers[0].self_attn.head_dim, rope_theta
        # every position's RoPE tables, computed once (extended if a stream runs past ``total``)
        self.cos_TD, self.sin_TD = rope_angles(torch.arange(max(total, 1), device=like.device), self.head_dim, rope_theta)
        self.journal: list[tuple] | None = None  # (slot, keys, values, doc ids) saved before each overwrite
        # The generator makes a new document-id tensor only when some row passes an EOS, so while
        # every filled slot was written with the current tensor, all of them hold the current
        # documents and the document mask is all true: no mask is built.
        self.seen_doc_B: torch.Tensor | None = None
        self.same_doc_from = 0  # first position written with seen_doc_B

    def snapshot(self) -> tuple:
        if self.journal is None:
            self.journal = []
        return len(self.journal), self.seen_doc_B, self.same_doc_from

    def restore(self, mark: tuple) -> None:
        store = self.store
        mark, self.seen_doc_B, self.same_doc_from = mark
        while len(self.journal) > mark:
            slot, k, v, doc = self.journal.pop()
            store.k[:, :, :, slot], store.v[:, :, :, slot], store.doc_BC[:, slot] = k, v, doc

    def commit(self) -> None:
        self.journal = None

    def begin(self, t: int, doc_B: torch.Tensor) -> None:
        store, C = self.store, self.store.capacity
        self.slot, self.used = t % C, min(C, t + 1)
        if self.journal is not None:
            s = self.slot
            self.journal.append((s, store.k[:, :, :, s].clone(), store.v[:, :, :, s].clone(), store.doc_BC[:, s].clone()))
        self.mask = None
        if self.block_documents:  # one document otherwise: attention crosses EOS, as the config asks
            store.doc_BC.select(1, self.slot).copy_(doc_B)
            if doc_B is not self.seen_doc_B:
                self.seen_doc_B, self.same_doc_from = doc_B, t
            if t - self.used + 1 < self.same_doc_from:  # a slot was written before the last document change
                self.mask = (store.doc_BC[:, : self.used] == doc_B[:, None])[:, None, None, :]
        if t >= self.cos_TD.shape[0]:
            self.cos_TD, self.sin_TD = rope_angles(torch.arange(2 * t + 1, device=self.cos_TD.device), self.head_dim,
                                                   self.rope_theta)
        self.cos, self.sin = self.cos_TD[t], self.sin_TD[t]

    def layer(self, i: int, h_BD: torch.Tensor) -> torch.Tensor:
        """``[B, D]`` -> ``[B, D]``; a ``[B, 1, D]`` input (the form plugin steps written against
        earlier versions pass) comes back as ``[B, 1, D]``."""
        if h_BD.dim() == 3:
            return self.layer(i, h_BD.squeeze(1)).unsqueeze(1)
        return self.fast[i](h_BD, self.cos, self.sin, self.store.k[i], self.store.v[i], self.slot, self.used, self.mask)


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
        return states_BLSD.index_select(0, rows_R), ids_BL.index_select(0, rows_R)

    def snapshot(self) -> tuple:
        return self.base, list(self.states), list(self.patch_ids)

    def restore(self, mark: tuple) -> None:
        self.base, states, ids = mark
        self.states, self.patch_ids = list(states), list(ids)

    def trim(self, lo: int) -> None:
        """Forget positions before ``lo``."""
        drop = lo - self.base
        if drop > 0:
            del self.states[:drop], self.patch_ids[:drop]
            self.base = lo
