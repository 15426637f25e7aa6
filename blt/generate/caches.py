"""Key/value stores for cached generation and the one-query attention that reads them.

A :class:`KVStore` holds the keys and values of every layer of one stack (encoder, global or
decoder) in preallocated buffers ``[layers, B, H_kv, C, hd]``. Before each step the caller says
which rows take part (``rows``) and which slot each writes (``slot_R``); each layer's
:class:`LayerCache` then satisfies the ``update(k, v) -> (k_all, v_all)`` protocol that
:class:`blt.model.blocks.SelfAttention` accepts, so the model's own layers run unchanged.

- Local (byte) stacks: every row is at the same byte position t (rows advance in lockstep from
  BOS), so the store is a ring of ``C = min(window, total length)`` slots and position t writes slot
  ``t % C``: memory and work per byte are bounded by the window, not by the length generated.
- The global stack: row b writes slot ``n_b`` (its patch count) and only rows that close a patch
  take part in a step; the global attention is over all earlier patches, as in the model.

Which keys a query may read is a :class:`~blt.attention.masks.MaskDescription` over the stored keys'
positions and document ids, bound to the model's attention backend, or to the one it names for single-query steps
(:func:`decode_backend`).
"""

from __future__ import annotations

import torch

from blt.attention.backend import AttentionBackend, bind
from blt.model.blocks import Attend
from blt.attention.masks import MaskDescription

EMPTY = 2**62  # position of an unused slot: never <= a query position, so causality excludes it


def decode_backend(model_backend: AttentionBackend) -> AttentionBackend:
    """The backend single-query steps use: the model's own, unless it names another through
    ``step_backend()`` (backends whose prepared form is costly to rebuild every step, flex/flash)."""
    other = getattr(model_backend, "step_backend", None)
    return other() if callable(other) else model_backend


def attend_for(backend: AttentionBackend, kind: str, q_pos_BQ: torch.Tensor, kv_pos_BK: torch.Tensor,
               q_doc_BQ: torch.Tensor | None = None, kv_doc_BK: torch.Tensor | None = None,
               window: int | None = None) -> Attend:
    """``attend(q, k, v)`` for one step's mask (built once per step and stack, shared by its layers)."""
    return bind(backend, MaskDescription(kind, q_pos_BQ, kv_pos_BK, q_doc_BQ, kv_doc_BK, window))


class KVStore:
    """Keys/values of ``layers`` layers for ``batch`` rows and ``capacity`` slots per row."""

    def __init__(self, layers: int, batch: int, kv_heads: int, head_dim: int, capacity: int,
                 dtype: torch.dtype, device: torch.device) -> None:
        shape = (layers, batch, kv_heads, capacity, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.capacity = capacity
        self.pos_BC = torch.full((batch, capacity), EMPTY, dtype=torch.long, device=device)
        self.doc_BC = torch.zeros(batch, capacity, dtype=torch.long, device=device)
        self.rows_R = torch.arange(batch, device=device)
        self.slot_R = torch.zeros(batch, dtype=torch.long, device=device)
        self.used = 0  # slots [0, used) are read by this step's queries

    def begin(self, rows_R: torch.Tensor, slot_R: torch.Tensor, pos_R: torch.Tensor, doc_R: torch.Tensor, used: int) -> None:
        """Set this step's rows, their slots, the new keys' positions/documents, and the slots read."""
        self.rows_R, self.slot_R, self.used = rows_R, slot_R, used
        self.pos_BC[rows_R, slot_R] = pos_R
        self.doc_BC[rows_R, slot_R] = doc_R

    def key_positions(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(positions [R, used], documents [R, used])`` of the slots this step reads."""
        return self.pos_BC[self.rows_R, : self.used], self.doc_BC[self.rows_R, : self.used]

    def layer(self, i: int) -> LayerCache:
        return LayerCache(self, i)

    def write(self, i: int, k_RH1D: torch.Tensor, v_RH1D: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.k[i, self.rows_R, :, self.slot_R] = k_RH1D[:, :, 0]
        self.v[i, self.rows_R, :, self.slot_R] = v_RH1D[:, :, 0]
        if self.rows_R.shape[0] == self.k.shape[1]:  # every row: a view, no copy
            return self.k[i, :, :, : self.used], self.v[i, :, :, : self.used]
        return self.k[i, self.rows_R, :, : self.used], self.v[i, self.rows_R, :, : self.used]


class LayerCache:
    """One layer's view of a :class:`KVStore` (the ``update`` protocol of ``SelfAttention``)."""

    def __init__(self, store: KVStore, index: int) -> None:
        self.store, self.index = store, index

    def update(self, k_RHTD: torch.Tensor, v_RHTD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.store.write(self.index, k_RHTD, v_RHTD)


def local_store(layers: list, batch: int, window: int | None, total: int, like: torch.Tensor) -> KVStore:
    """A ring store for a windowed byte stack: ``min(window, total)`` slots (``total`` when unlimited)."""
    attn = layers[0].self_attn
    capacity = total if window is None else min(window, total)
    return KVStore(len(layers), batch, attn.kv_heads, attn.head_dim, max(capacity, 1), like.dtype, like.device)
