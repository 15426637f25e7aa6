"""Documents inside a generation row: each is patched alone, as the data pipeline patches them.

Training patches every document (``BOS bytes... EOS``) on its own (``blt.data.store.patch_document``:
``include_next_token=False``), so no patch crosses an EOS and each document's patching starts
fresh: its first position starts a patch, a dynamic patcher's second position does too, a strided
patcher counts from the document's first position, an entropy patcher's model reads the document
alone. A generation row that holds an EOS (in its prompt, or generated with ``stop_at_eos=False``)
is patched the same way: the position after each EOS opens a new document.

:func:`row_lengths` is that rule for a whole prefix (the no-cache oracle and the re-patching
fallback); :class:`DocumentClock` gives incremental start steppers each row's position within its
current document, so they restart after an EOS one byte at a time.
"""

from __future__ import annotations

from typing import Any

import torch

from blt.tokens import EOS_ID


def document_spans(ids: list[int]) -> list[tuple[int, int]]:
    """``[(lo, hi), ...]``: each document's token range; a document ends with (and holds) its EOS.
    A prefix that ends with EOS gets no empty document after it."""
    spans, lo = [], 0
    for i, token in enumerate(ids):
        if token == EOS_ID:
            spans.append((lo, i + 1))
            lo = i + 1
    if lo < len(ids):
        spans.append((lo, len(ids)))
    return spans


def row_lengths(patcher: Any, tokens_N: torch.Tensor) -> torch.Tensor:
    """Patch lengths ``[P]`` of one row with ``include_next_token=True`` (summing to N + 1), every
    document patched alone. The next position belongs to the last document, or opens a new one
    (a patch of its own start) when the row ends with EOS."""
    patch = getattr(patcher, "patch_prepared", None) or patcher.patch  # the rule on the stream the model reads
    ids = tokens_N.tolist()
    spans = document_spans(ids)
    parts = []
    for j, (lo, hi) in enumerate(spans):
        last_open = j == len(spans) - 1 and ids[-1] != EOS_ID
        lengths = patch(tokens_N[lo:hi], include_next_token=last_open).lengths
        parts.append(lengths[lengths > 0].to(torch.long))
    if ids[-1] == EOS_ID:
        parts.append(torch.ones(1, dtype=torch.long, device=tokens_N.device))
    return torch.cat(parts).to(tokens_N.device)


class DocumentClock:
    """Per-row position of the current token within its document (0 at BOS / after each EOS)."""

    def __init__(self) -> None:
        self.start_B: torch.Tensor | None = None
        self.start: list[int] | None = None

    def snapshot(self) -> tuple:
        return self.start_B, self.start  # both are replaced at each step, never changed in place

    def restore(self, mark: tuple) -> None:
        self.start_B, self.start = mark

    def local_values(self, tokens: list[int], t: int) -> list[int]:
        """:meth:`local` on Python values (one clock uses one of the two)."""
        if self.start is None:
            self.start = [0] * len(tokens)
        local = [t - s for s in self.start]
        self.start = [t + 1 if token == EOS_ID else s for token, s in zip(tokens, self.start)]
        return local

    def local(self, tokens_B: torch.Tensor, t: int) -> torch.Tensor:
        """Position of token t in its document, ``[B]`` (call once per t, in order); then notes
        that an EOS at t ends its document."""
        if self.start_B is None:
            self.start_B = torch.zeros_like(tokens_B, dtype=torch.long)
        local_B = t - self.start_B
        self.start_B = torch.where(tokens_B == EOS_ID, t + 1, self.start_B)
        return local_B
