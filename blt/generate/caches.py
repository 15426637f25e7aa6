"""Key/value stores for cached generation.

A :class:`KVStore` holds the keys and values of every layer of one stack (encoder, global or
decoder) in preallocated buffers ``[layers, B, H_kv, C, hd]``, and the document id of each slot's
key; :class:`blt.generate.fast_layers.FastLayer` writes a step's key/value into its slot in place
and reads the filled slots with one attention call.

- Local (byte) stacks: every row is at the same byte position t (rows advance in lockstep from
  BOS), so the store is a ring of ``C = min(window, total length)`` slots and position t writes slot
  ``t % C``: memory and work per byte are bounded by the window, not by the length generated.
- The global stack: row b writes slot ``n_b`` (its patch count) and only rows that close a patch
  take part in a step; the global attention is over all earlier patches, as in the model.

:func:`decode_backend` names the attention backend a component step is given (the model's, or the
one it names for single-query steps); the builtin steps compute single-query attention with
``scaled_dot_product_attention`` and an explicit boolean mask, the same maths as every backend.
"""

from __future__ import annotations

import torch

from blt.attention.backend import AttentionBackend

EMPTY = 2**62  # position of an unused slot (the decoder's ring of patch slots)


def decode_backend(model_backend: AttentionBackend) -> AttentionBackend:
    """The backend single-query steps use: the model's own, unless it names another through
    ``step_backend()`` (backends whose prepared form is costly to rebuild every step, flex/flash)."""
    other = getattr(model_backend, "step_backend", None)
    return other() if callable(other) else model_backend


class KVStore:
    """Keys/values of ``layers`` layers for ``batch`` rows and ``capacity`` slots per row, and the
    document id of the key in each slot (``doc_BC``; None with ``documents=False``)."""

    def __init__(self, layers: int, batch: int, kv_heads: int, head_dim: int, capacity: int,
                 dtype: torch.dtype, device: torch.device, documents: bool = True) -> None:
        shape = (layers, batch, kv_heads, capacity, head_dim)
        self.replace(torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device),
                     torch.zeros(batch, capacity, dtype=torch.long, device=device) if documents else None)

    def replace(self, k: torch.Tensor, v: torch.Tensor, doc_BC: torch.Tensor | None) -> None:
        """New buffers (a store that grows); ``layers[i]`` is layer i's ``(k, v)``, views made once."""
        self.k, self.v, self.doc_BC, self.capacity = k, v, doc_BC, k.shape[3]
        self.layers = list(zip(k.unbind(0), v.unbind(0)))


def local_store(layers: list, batch: int, window: int | None, total: int, like: torch.Tensor) -> KVStore:
    """A ring store for a windowed byte stack: ``min(window, total)`` slots (``total`` when unlimited)."""
    attn = layers[0].self_attn
    capacity = total if window is None else min(window, total)
    return KVStore(len(layers), batch, attn.kv_heads, attn.head_dim, max(capacity, 1), like.dtype, like.device)
