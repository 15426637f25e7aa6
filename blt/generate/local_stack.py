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
        self.capacity = self.store.capacity  # as built (reserve() may grow the store, settle() shrinks it back)
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
        self.last_t = -1  # the latest position stepped
        self.pos_C: torch.Tensor | None = None  # after reserve(): the position each slot holds

    def reserve(self, extra: int) -> None:
        """Room for ``extra`` positions past the window, and slots that know their positions
        (speculative decoding: drafted positions are written again by the verification block, and
        must not evict keys a later query still needs). From then on every step masks by position
        (``t - window < pos <= t``), so positions written after a rewind point are ignored until
        they are written again. Call between steps; growing keeps every live slot."""
        store, C = self.store, self.store.capacity
        grow = self.window is not None and C >= self.window and C < self.window + extra
        if self.pos_C is not None and not grow:
            return
        new_C = self.window + extra if grow else C
        positions = self._move_to(new_C)
        pos_C = torch.full((new_C,), -(2**62), dtype=torch.long, device=store.k.device)
        pos_C[positions % new_C] = positions
        self.pos_C = pos_C

    def _move_to(self, new_C: int) -> torch.Tensor:
        """The last ``min(C, new_C)`` positions up to the latest into a store of ``new_C`` slots
        (slot ``t % new_C``); -> those positions."""
        store, C = self.store, self.store.capacity
        positions = torch.arange(max(0, self.last_t - min(C, new_C) + 1), self.last_t + 1, device=store.k.device)
        if new_C != C:
            old, new = positions % C, positions % new_C
            k = store.k.new_zeros(store.k.shape[:3] + (new_C,) + store.k.shape[4:])
            v, doc = torch.zeros_like(k), store.doc_BC.new_zeros(store.doc_BC.shape[0], new_C)
            k[:, :, :, new], v[:, :, :, new], doc[:, new] = store.k[:, :, :, old], store.v[:, :, :, old], store.doc_BC[:, old]
            store.replace(k, v, doc)
        return positions

    def settle(self, doc_B: torch.Tensor, same_doc_from: int) -> None:
        """Undo :meth:`reserve` after a prompt's blocks (prefill): the live positions go back into a
        ring of the capacity the stack was built with, slot ``t % C``, and steps stop masking by
        position. ``doc_B``: the document-id tensor the next steps pass (the generator's current
        one); ``same_doc_from``: the first position of its current documents (after the prompt's
        last EOS), so the document mask is skipped as before."""
        if self.pos_C is None:
            return
        self._move_to(self.capacity)
        self.pos_C = None
        self.seen_doc_B, self.same_doc_from = doc_B, same_doc_from

    def snapshot(self) -> tuple:
        if self.journal is None:
            self.journal = []
        return len(self.journal), self.seen_doc_B, self.same_doc_from

    def restore(self, mark: tuple) -> None:
        store = self.store
        mark, self.seen_doc_B, self.same_doc_from = mark
        while len(self.journal) > mark:
            slot, k, v, doc, pos = self.journal.pop()
            store.k[:, :, :, slot], store.v[:, :, :, slot], store.doc_BC[:, slot] = k, v, doc
            if pos is not None:
                self.pos_C[slot] = pos

    def commit(self) -> None:
        self.journal = None

    def begin(self, t: int, doc_B: torch.Tensor) -> None:
        store, C = self.store, self.store.capacity
        self.slot, self.used = t % C, min(C, t + 1)
        self.last_t = t
        if self.journal is not None:
            s = self.slot
            self.journal.append((s, store.k[:, :, :, s].clone(), store.v[:, :, :, s].clone(), store.doc_BC[:, s].clone(),
                                 None if self.pos_C is None else self.pos_C[s].clone()))
        self.mask = None
        if self.block_documents:  # one document otherwise: attention crosses EOS, as the config asks
            store.doc_BC.select(1, self.slot).copy_(doc_B)
            if doc_B is not self.seen_doc_B:
                self.seen_doc_B, self.same_doc_from = doc_B, t
            if t - self.used + 1 < self.same_doc_from:  # a slot was written before the last document change
                self.mask = (store.doc_BC[:, : self.used] == doc_B[:, None])[:, None, None, :]
        if self.pos_C is not None:  # reserved: slots may hold positions outside the window or after t
            self.pos_C[self.slot] = t
            pos = self.pos_C[: self.used]
            live = ((pos <= t) & (pos > t - self.window if self.window is not None else pos >= 0))[None, None, None, :]
            self.mask = live if self.mask is None else self.mask & live
        if t >= self.cos_TD.shape[0]:
            self.cos_TD, self.sin_TD = rope_angles(torch.arange(2 * t + 1, device=self.cos_TD.device), self.head_dim,
                                                   self.rope_theta)
        self.cos, self.sin = self.cos_TD[t], self.sin_TD[t]

    def begin_block(self, t0: int, doc_M: torch.Tensor, row: int = 0) -> None:
        """Positions ``t0 .. t0 + M - 1`` of cache row ``row`` at once, after :meth:`reserve`: their
        keys go to their slots and query i sees the live slots up to position ``t0 + i``, as
        :meth:`begin` at that position would, with the earlier block positions' keys among them.
        (Rows share positions, so a block may run for each row in turn.)"""
        store, C, M = self.store, self.store.capacity, doc_M.shape[0]
        positions_M = torch.arange(t0, t0 + M, device=doc_M.device)
        self.block_slots, self.block_row = positions_M % C, row
        self.pos_C[self.block_slots] = positions_M
        store.doc_BC[row, self.block_slots] = doc_M
        self.used = min(C, t0 + M)
        pos = self.pos_C[: self.used][None, :]
        q = positions_M[:, None]
        live = (pos <= q) & (pos > q - self.window if self.window is not None else pos >= 0)
        if self.block_documents:
            live = live & (store.doc_BC[row, : self.used][None, :] == doc_M[:, None])
        self.block_mask = live[None, None]
        self.last_t = t0 + M - 1
        if t0 + M > self.cos_TD.shape[0]:
            self.cos_TD, self.sin_TD = rope_angles(torch.arange(2 * (t0 + M), device=self.cos_TD.device), self.head_dim,
                                                   self.rope_theta)
        self.block_cos, self.block_sin = self.cos_TD[t0 : t0 + M, None], self.sin_TD[t0 : t0 + M, None]

    def layer_block(self, i: int, h_MD: torch.Tensor) -> torch.Tensor:
        """Layer ``i`` for the positions of :meth:`begin_block`, ``[M, D]`` -> ``[M, D]``."""
        return self.fast[i].queries(h_MD, self.block_cos, self.block_sin, *self.store.layers[i], self.block_row,
                                    self.block_slots, self.used, self.block_mask)

    def layer(self, i: int, h_BD: torch.Tensor) -> torch.Tensor:
        """``[B, D]`` -> ``[B, D]``; a ``[B, 1, D]`` input (the form plugin steps written against
        earlier versions pass) comes back as ``[B, 1, D]``."""
        if h_BD.dim() == 3:
            return self.layer(i, h_BD.squeeze(1)).unsqueeze(1)
        return self.fast[i](h_BD, self.cos, self.sin, *self.store.layers[i], self.slot, self.used, self.mask)


class StackStep:
    """What a decoder step over a :class:`LocalStack` (``self.stack``) hands to it unchanged: the
    end of rewinding, and the room for blocks of positions that speculative verification and
    prompt prefill need."""

    stack: LocalStack

    def commit(self) -> None:
        self.stack.commit()

    def reserve(self, extra: int) -> None:
        """Room for blocks of positions (:meth:`LocalStack.reserve`)."""
        self.stack.reserve(extra)

    def settle(self, doc_B: torch.Tensor, same_doc_from: int) -> None:
        """Back to the plain ring after a prefill (:meth:`LocalStack.settle`)."""
        self.stack.settle(doc_B, same_doc_from)


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

    def span(self, lo: int, rows_R: torch.Tensor, ids: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(states [R, L, S, d], patch ids [R, L])`` of positions ``lo ..`` the newest (``ids``
        False: None for the ids)."""
        i = lo - self.base
        states_RLSD = torch.stack(self.states[i:], dim=1).index_select(0, rows_R)
        return states_RLSD, torch.stack(self.patch_ids[i:], dim=1).index_select(0, rows_R) if ids else None

    def row_span(self, lo: int, b: int) -> torch.Tensor:
        """States ``[1, L, S, d]`` of row ``b`` at positions ``lo ..`` the newest."""
        return torch.stack(self.states[lo - self.base :], dim=1).narrow(0, b, 1)

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
