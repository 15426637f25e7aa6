"""Small models and their inputs for the model-level suites (components inside a small BLT, whole models).

The small BLT: :data:`SMALL_MODEL` (``[model]``), the builtin ``cross_attention`` encoder and
decoder of :data:`PARTNERS`, and a component under test whose default config has the size fields
of :data:`SHRINK` shrunk (only fields its config type has, only those not given).

Rows are what a model reads: ``BOS`` then bytes of a small alphabet (spaces, newlines, a
multi-byte character) with EOS (a document boundary) and sometimes BOS after it. Patches are
computed the way training and generation compute them: on the stream the model reads (a
patcher's ``prepare_document`` / ``patch_prepared`` when it has them), with
``include_next_token=True`` and BOS given its own patch.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
from hypothesis import strategies as st

from blt.model.layout import split_first_patch
from blt.tokens import BOS_ID, BPE_ID, EOS_ID, OFFSET, PAD_ID

SMALL_MODEL = {"kind": "blt", "d_local": 16, "d_global": 32, "global_layers": 1, "global_heads": 2, "global_ffn": 64}
SHRINK = {"ffn_dim": 32, "window": 6, "hash_buckets": 61}
PARTNERS = {
    "encoder": {"kind": "cross_attention", "layers": 1, "heads": 2, "ffn_dim": 32, "window": 6, "hash_sizes": [2, 3],
                "hash_buckets": 61, "k": 2, "cross_heads": 2},
    "decoder": {"kind": "cross_attention", "layers": 1, "heads": 2, "ffn_dim": 32, "window": 6, "k": 2, "cross_heads": 2},
}

#: Bytes the rows are made of: word characters, spaces, punctuation, a newline, a 2-byte character.
ALPHABET = tuple(b"ab cd.\n1") + (0xC3, 0xA9)
_SPECIALS = (EOS_ID, BOS_ID)


def _ids(pieces: list[int]) -> list[int]:
    return [BOS_ID] + [p if p in _SPECIALS else p + OFFSET for p in pieces]


def rows(*, min_bytes: int = 1, max_bytes: int = 30) -> st.SearchStrategy[list[int]]:
    """One row of ids: BOS, then bytes of :data:`ALPHABET` with EOS (and BOS after it) mixed in."""
    piece = st.one_of(st.sampled_from(ALPHABET), st.sampled_from(ALPHABET), st.sampled_from(ALPHABET), st.sampled_from(_SPECIALS))
    return st.lists(piece, min_size=min_bytes, max_size=max_bytes).map(_ids)


@attrs.frozen
class Edit:
    """A row, a position t, and other tokens for every position after t."""

    ids: tuple[int, ...]
    t: int
    tail: tuple[int, ...]

    @property
    def edited(self) -> tuple[int, ...]:
        return self.ids[: self.t + 1] + self.tail

    def __str__(self) -> str:
        return f"row {list(self.ids)}, edited after t={self.t} to {list(self.edited)}"


@st.composite
def edits(draw: st.DrawFn, *, max_bytes: int = 30, stream: Any = None) -> Edit:
    """A row, t, and a different tail after t (same length). ``stream(ids) -> ids`` maps the
    drawn row first (a patcher's ``prepare_document``); the tail may hold any special token."""
    ids = draw(rows(min_bytes=2, max_bytes=max_bytes))
    if stream is not None:
        ids = list(stream(ids))
    t = draw(st.integers(0, len(ids) - 2))
    n = len(ids) - t - 1
    pool = [a + OFFSET for a in ALPHABET] + [EOS_ID, BOS_ID, BPE_ID, OFFSET + 255, OFFSET]
    # the token right after t is the likeliest to leak (a boundary decided by looking one ahead):
    # half the time it is one that ends or starts a patch for many patchers
    first = draw(st.one_of(st.sampled_from([OFFSET + ord(" "), EOS_ID, OFFSET + ord("."), BPE_ID]), st.sampled_from(pool)))
    rest = draw(st.lists(st.sampled_from(pool), min_size=n - 1, max_size=n - 1))
    tail = [first, *rest]
    if tail == ids[t + 1 :]:
        tail[0] = OFFSET + ord("a") if tail[0] != OFFSET + ord("a") else OFFSET + ord("b")
    return Edit(tuple(ids), t, tuple(tail))


@st.composite
def ragged_batches(draw: st.DrawFn, *, max_rows: int = 3, max_bytes: int = 24) -> tuple[list[list[int]], list[int]]:
    """Rows of different lengths and, per row, the id its tail is padded with (pad, EOS, space)."""
    batch = draw(st.lists(rows(max_bytes=max_bytes), min_size=2, max_size=max_rows))
    pads = draw(st.lists(st.sampled_from([PAD_ID, EOS_ID, OFFSET + ord(" ")]), min_size=len(batch), max_size=len(batch)))
    return batch, pads


def padded(batch: list[list[int]], pads: list[int], extra: int = 0) -> torch.Tensor:
    """``LongTensor[B, N]``: each row right-padded with its own pad id to the longest row + ``extra``."""
    n = max(len(r) for r in batch) + extra
    return torch.tensor([r + [p] * (n - len(r)) for r, p in zip(batch, pads)], dtype=torch.long)


def stream_patch(patcher: Any) -> Any:
    """The patcher's rule on the stream the model reads (``patch_prepared`` when it has one)."""
    return getattr(patcher, "patch_prepared", None) or patcher.patch


def prepare_stream(patcher: Any, ids: list[int]) -> list[int]:
    """A document as the model reads it (``prepare_document`` when the patcher has one)."""
    prepare = getattr(patcher, "prepare_document", None)
    return ids if prepare is None else prepare(torch.tensor(ids, dtype=torch.long)).tolist()


def model_patches(patcher: Any, tokens_BN: torch.Tensor) -> torch.Tensor:
    """Patch lengths ``[B, P]`` for a model: ``include_next_token=True``, BOS a patch of its own."""
    return split_first_patch(stream_patch(patcher)(tokens_BN, include_next_token=True).lengths.to(tokens_BN.device))


def max_difference(a: torch.Tensor, b: torch.Tensor) -> tuple[float, list[int]]:
    """Largest absolute difference between two equal-shaped tensors and where it is."""
    err = (a.double() - b.double()).abs()
    where = [int(i) for i in torch.unravel_index(err.argmax(), err.shape)] if err.numel() else []
    return (float(err.max()) if err.numel() else 0.0), where


__all__ = ["ALPHABET", "PARTNERS", "SHRINK", "SMALL_MODEL", "Edit", "edits", "max_difference", "model_patches", "padded", "prepare_stream", "ragged_batches",
           "rows", "stream_patch"]
