"""Packing documents' tokens and patch lengths into fixed-size rows for the model.

Contract (as the reference packs). Each document is patched alone with
``include_next_token=False``, so no patch crosses a document boundary. The stream of documents is
cut into rows of ``seq_len`` inputs; row ``r`` covers stream positions ``[s, s + seq_len]``
(``seq_len + 1`` tokens: inputs ``x = row[:-1]``, targets ``y = row[1:]``) and the next row starts at
``s + seq_len``, so every target is predicted exactly once. The model wants patch lengths as from
``patch(x, include_next_token=True)``: they cover all ``seq_len + 1`` positions and the first is 1.
The rule that gives this, from the document patches:

1. Take the patches that overlap the row, the first trimmed to start at ``s`` and the last
   trimmed to end at ``s + seq_len`` (so the next-token position closes or opens the last patch
   exactly as the document's own patching does).
2. If the first patch is longer than 1, split it into ``[1, l0 - 1]`` (position ``s`` is alone,
   as BOS would be; the reference does the same).
3. When the data runs out (held-out evaluation), pad tokens with 0 (pad, ignored as a target)
   and grow the last patch over the padding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from blt.tokens import PAD_ID


def trim_front(lengths: np.ndarray, offset: int) -> np.ndarray:
    """Patch lengths of a document that starts ``offset`` tokens late (``0 <= offset < sum``)."""
    if offset == 0:
        return np.asarray(lengths, dtype=np.int64)
    ends = np.cumsum(lengths, dtype=np.int64)
    first = int(np.searchsorted(ends, offset, side="right"))  # the patch containing `offset`
    out = np.asarray(lengths[first:], dtype=np.int64).copy()
    out[0] = ends[first] - offset
    return out


def pack_row(segments: Sequence[tuple[np.ndarray, np.ndarray]], total: int) -> tuple[np.ndarray, np.ndarray]:
    """Join document pieces into one row of ``total`` tokens (``seq_len + 1``).

    ``segments``: ``(tokens[n_i], lengths[p_i])`` in stream order, each a document tail
    (``lengths`` already trimmed with :func:`trim_front`, summing to ``n_i``); together they hold at
    least ``total`` tokens, or fewer at the end of the data (then the row is padded).
    Returns ``(tokens int64[total], lengths int64[P])`` with ``lengths.sum() == total`` and
    ``lengths[0] == 1``.
    """
    if total < 2:
        raise ValueError(f"a row needs at least 2 tokens, got total={total}")
    tokens = np.concatenate([np.asarray(t, dtype=np.int64) for t, _ in segments]) if segments else np.zeros(0, np.int64)
    lengths = np.concatenate([np.asarray(p, dtype=np.int64) for _, p in segments]) if segments else np.zeros(0, np.int64)
    if len(tokens) != int(lengths.sum()):
        raise ValueError(f"segments hold {len(tokens)} tokens but their patch lengths sum to {int(lengths.sum())}")
    if len(tokens) == 0:
        raise ValueError("pack_row needs at least one token")
    if len(tokens) >= total:
        tokens = tokens[:total]
        ends = np.cumsum(lengths)
        last = int(np.searchsorted(ends, total, side="left"))  # first patch reaching `total`
        lengths = lengths[: last + 1].copy()
        lengths[-1] -= int(ends[last]) - total
    else:  # end of data: pad and grow the last patch over the padding
        pad = total - len(tokens)
        tokens = np.concatenate([tokens, np.full(pad, PAD_ID, dtype=np.int64)])
        lengths = lengths.copy()
        lengths[-1] += pad
    if lengths[0] > 1:
        lengths = np.concatenate([[1, lengths[0] - 1], lengths[1:]])
    return tokens, lengths


def pad_lengths(rows: Sequence[np.ndarray]) -> np.ndarray:
    """Stack rows of patch lengths into ``int64[B, P_max]``, zero-padded on the right."""
    width = max(len(r) for r in rows)
    out = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


__all__ = ["pack_row", "pad_lengths", "trim_front"]
