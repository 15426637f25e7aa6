"""Incremental patching: after byte t is known, does position t + 1 start a patch?

This is the ``include_next_token`` rule applied one position at a time. A *start stepper* consumes
the token at position t of every row and returns ``starts_B``, whether position ``t + 1`` opens a
patch, at a cost that does not grow with t:

- ``strided(k)``: ``(t + 1) % k == 0``; ``byte``: always;
- ``space``: token t is *marked* (from tokens t - 1 and t only);
- ``entropy`` / ``cnn_entropy``: the entropy model advances one byte with its stream state (the
  transformer keeps only its last ``window - 1`` keys, the CNN only the previous byte), then the
  global (``e[t] > θ``) or relative (``e[t] - e[t-1] > θr``) rule of :mod:`blt.entropy.rules`;
- any other patcher may provide ``start_stepper(batch)`` returning an object with
  ``step(tokens_B, t) -> starts_B`` (final starts, ``max_patch_length`` included); otherwise a
  correct but O(t)-per-byte fallback re-patches the whole prefix.

:class:`PatchStarts` then applies what every patcher shares, in the order ``patch`` + the model's
input convention apply them: ``max_patch_length`` splits (left to right, counted from the last rule
start) and the BOS rule of :func:`blt.model.layout.split_first_patch` (position 1 always starts).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from blt.entropy.rules import step_start

from blt.core.errors import UnavailableError


class StartStepper(Protocol):
    def step(self, tokens_B: torch.Tensor, t: int) -> torch.Tensor:
        """Consume the tokens at position ``t``; -> bool ``[B]``: position ``t + 1`` starts a patch."""
        ...


class StridedStarts:
    def __init__(self, patch_size: int) -> None:
        self.patch_size = patch_size

    def step(self, tokens_B: torch.Tensor, t: int) -> torch.Tensor:
        return torch.full_like(tokens_B, (t + 1) % self.patch_size == 0, dtype=torch.bool)


class ByteStarts:
    def step(self, tokens_B: torch.Tensor, t: int) -> torch.Tensor:
        return torch.ones_like(tokens_B, dtype=torch.bool)


class SpaceStarts:
    """Start(t + 1) for t >= 1 iff token t is marked; Start(1) always (dynamic prefix)."""

    def __init__(self) -> None:
        self.prev_B: torch.Tensor | None = None

    def step(self, tokens_B: torch.Tensor, t: int) -> torch.Tensor:
        from blt.plugins.patchers.space import marked_positions

        window_BW = tokens_B[:, None] if self.prev_B is None else torch.stack([self.prev_B, tokens_B], dim=1)
        self.prev_B = tokens_B
        if t == 0:
            return torch.ones_like(tokens_B, dtype=torch.bool)
        return marked_positions(window_BW)[:, -1]


class EntropyStarts:
    """Runs the patcher's entropy model one byte at a time (its stream state is the cache)."""

    def __init__(self, patcher: Any, batch: int) -> None:
        from blt.entropy.compute import entropy_from_logits

        self.model = patcher.model
        self.state = self.model.new_state(batch)
        self.threshold, self.relative = patcher.threshold, patcher.relative_threshold
        self.entropy = entropy_from_logits
        self.prev_e_B: torch.Tensor | None = None
        self.device = self.model.embed_tokens.weight.device

    def step(self, tokens_B: torch.Tensor, t: int) -> torch.Tensor:
        logits_B1V = self.model(tokens_B.to(self.device)[:, None], self.state)
        e_B = self.entropy(logits_B1V)[:, 0].to(tokens_B.device)  # e[t]: entropy of the prediction of t + 1
        prev, self.prev_e_B = self.prev_e_B, e_B
        return step_start(e_B, prev, t + 1, threshold=self.threshold, relative_threshold=self.relative)


class RepatchStarts:
    """Fallback for an incremental patcher without a stepper: re-patch the whole prefix (O(t) per byte)."""

    def __init__(self, patcher: Any, batch: int) -> None:
        self.patcher = patcher
        self.history: list[torch.Tensor] = []

    def step(self, tokens_B: torch.Tensor, t: int) -> torch.Tensor:
        self.history.append(tokens_B)
        prefix_BN = torch.stack(self.history, dim=1)
        lengths_BP = self.patcher.patch(prefix_BN, include_next_token=True).lengths
        ends_BP = torch.cumsum(lengths_BP, dim=1)
        return ((ends_BP == t + 1) & (lengths_BP > 0)).any(dim=1)  # a patch ends at t: t + 1 starts one


def rule_stepper(patcher: Any, batch: int) -> tuple[StartStepper, bool]:
    """``(stepper, applies_max_length)`` for a patcher; refuses non-incremental patchers."""
    if not getattr(patcher, "incremental", False):
        raise UnavailableError(
            f"patcher {type(patcher).__name__} is not incremental (appending bytes can move earlier patch "
            "boundaries, e.g. bpe), so cached generation cannot patch on the fly; use cache=False (--no-cache) "
            "or an incremental patcher (strided, byte, space, entropy, cnn_entropy)")
    from blt.entropy.patcher import EntropyPatcher
    from blt.plugins.patchers.byte import BytePatcher
    from blt.plugins.patchers.space import SpacePatcher
    from blt.plugins.patchers.strided import StridedPatcher

    if isinstance(patcher, StridedPatcher):
        return StridedStarts(patcher.config.patch_size), False
    if isinstance(patcher, BytePatcher):
        return ByteStarts(), False
    if isinstance(patcher, SpacePatcher):
        return SpaceStarts(), False
    if isinstance(patcher, EntropyPatcher):
        return EntropyStarts(patcher, batch), False
    own = getattr(patcher, "start_stepper", None)
    if callable(own):
        return own(batch), True
    return RepatchStarts(patcher, batch), True


class PatchStarts:
    """Per-row patch bookkeeping while generating: the final start decision for position t + 1."""

    def __init__(self, patcher: Any, batch: int, device: torch.device) -> None:
        self.stepper, self.final = rule_stepper(patcher, batch)
        config = getattr(patcher, "config", None)
        self.max_len = getattr(config, "max_patch_length", None)
        self.last_rule_start_B = torch.zeros(batch, dtype=torch.long, device=device)

    def step(self, tokens_B: torch.Tensor, t: int) -> torch.Tensor:
        """Consume position t's tokens; -> bool ``[B]``, position ``t + 1`` starts a patch."""
        starts_B = self.stepper.step(tokens_B, t)
        p = t + 1
        if not self.final and self.max_len is not None:
            self.last_rule_start_B = torch.where(starts_B, p, self.last_rule_start_B)
            starts_B = starts_B | ((p - self.last_rule_start_B) % self.max_len == 0)
        if p == 1:  # BOS is a patch of its own (split_first_patch)
            starts_B = torch.ones_like(starts_B)
        return starts_B
