"""Incremental (prefix-stable) patching: the check and its counterexample.

A patcher is incremental iff for every prefix ``x[:i]``, ``patch(x[:i])`` equals ``patch(x)``
restricted to the first ``i`` tokens (``i + 1`` positions with ``include_next_token``).
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from blt.tokens import decode


@attrs.frozen
class IncrementalCounterexample:
    """``patch(tokens[:prefix_len])`` differs from ``patch(tokens)`` restricted to the prefix."""

    tokens: torch.Tensor
    prefix_len: int
    include_next_token: bool
    prefix_lengths: list[int]
    restricted_lengths: list[int]

    def __str__(self) -> str:
        return (f"{show_tokens(self.tokens)}: patch(x[:{self.prefix_len}], include_next_token="
                f"{self.include_next_token}) = {self.prefix_lengths}, but patch(x) restricted to the first "
                f"{self.prefix_len} tokens = {self.restricted_lengths}")


def show_tokens(tokens: torch.Tensor) -> str:
    """A readable rendering of a row or batch: its ids and the bytes they spell."""
    rows = [tokens] if tokens.dim() < 2 else list(tokens)
    return "; ".join(f"tokens {r.tolist()} (bytes {decode(r)!r})" for r in rows)


def _starts(lengths: torch.Tensor) -> list[int]:
    """Start positions of the non-zero patches of one row of lengths."""
    ends = torch.cumsum(lengths, 0)
    return (ends - lengths)[lengths > 0].tolist()


def _lengths_from(starts: list[int], total: int) -> list[int]:
    bounds = [*starts, total]
    return [b - a for a, b in zip(bounds, bounds[1:], strict=False)]


def nonzero_lengths(row: torch.Tensor) -> list[int]:
    return [int(x) for x in row.tolist() if x]


def incremental_violation(patcher: Any, tokens: torch.Tensor,
                          modes: tuple[bool, ...] = (False, True)) -> IncrementalCounterexample | None:
    """The first prefix whose patches differ from the full row's, trying each include_next_token mode."""
    n = tokens.shape[0]
    for nxt in modes:
        full = _starts(patcher.patch(tokens.clone(), include_next_token=nxt).lengths)
        for i in range(n + 1):
            got = nonzero_lengths(patcher.patch(tokens[:i].clone(), include_next_token=nxt).lengths)
            total = i + int(nxt)
            want = _lengths_from([s for s in full if s < total], total)
            if got != want:
                return IncrementalCounterexample(tokens, i, nxt, got, want)
    return None
