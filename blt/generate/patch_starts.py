"""Incremental patching: after byte t is known, does position t + 1 start a patch?

This is the ``include_next_token`` rule applied one position at a time. A *start stepper* consumes
the token at position t of every row and returns ``starts_B``, whether position ``t + 1`` opens a
patch by the patcher's rule (before ``max_patch_length``), at a cost that does not grow with t.
Each patcher provides its own as ``start_stepper(batch)``, in its plugin file; for an incremental
patcher without one, a correct but O(t)-per-byte fallback re-patches the whole prefix.

:class:`PatchStarts` then applies what every patcher shares, in the order ``patch`` + the model's
input convention apply them: ``max_patch_length`` splits (left to right, counted from the last rule
start) and the BOS rule of :func:`blt.model.layout.split_first_patch` (position 1 always starts).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from blt.core.errors import UnavailableError


class StartStepper(Protocol):
    def step(self, tokens_B: torch.Tensor, t: int) -> torch.Tensor:
        """Consume the tokens at position ``t``; -> bool ``[B]``: position ``t + 1`` starts a patch."""
        ...


class RepatchStarts:
    """Fallback for an incremental patcher without a stepper: re-patch the whole prefix (O(t) per
    byte). The patcher's lengths already hold its ``max_patch_length`` splits; re-applying them
    from the last start changes nothing."""

    def __init__(self, patcher: Any, batch: int) -> None:
        self.patcher = patcher
        self.history: list[torch.Tensor] = []

    def step(self, tokens_B: torch.Tensor, t: int) -> torch.Tensor:
        self.history.append(tokens_B)
        prefix_BN = torch.stack(self.history, dim=1)
        lengths_BP = self.patcher.patch(prefix_BN, include_next_token=True).lengths
        ends_BP = torch.cumsum(lengths_BP, dim=1)
        return ((ends_BP == t + 1) & (lengths_BP > 0)).any(dim=1)  # a patch ends at t: t + 1 starts one


def patcher_name(patcher: Any) -> str:
    """``'space'`` (its config's kind), else the class name, for messages."""
    config = getattr(patcher, "config", None)
    return repr(getattr(config, "kind", None) or type(patcher).__name__)


def cached_patching_problem(patcher: Any) -> str | None:
    """Why cached generation cannot patch on the fly with ``patcher``, or None when it can: it needs
    an incremental patcher or one with its own ``start_stepper``."""
    if getattr(patcher, "incremental", False) or callable(getattr(patcher, "start_stepper", None)):
        return None
    return (f"the {patcher_name(patcher)} patcher is not incremental (appending bytes can move earlier patch boundaries), so cached "
            "generation cannot patch on the fly; use cache=False (blt generate --no-cache) or an incremental patcher")


def rule_stepper(patcher: Any, batch: int) -> StartStepper:
    """The patcher's own stepper (``start_stepper``), else re-patching; refuses what cannot step."""
    problem = cached_patching_problem(patcher)
    if problem is not None:
        raise UnavailableError(problem)
    own = getattr(patcher, "start_stepper", None)
    return own(batch) if callable(own) else RepatchStarts(patcher, batch)


class PatchStarts:
    """Per-row patch bookkeeping while generating: the final start decision for position t + 1."""

    def __init__(self, patcher: Any, batch: int, device: torch.device) -> None:
        self.stepper = rule_stepper(patcher, batch)
        config = getattr(patcher, "config", None)
        self.max_len = getattr(config, "max_patch_length", None)
        self.last_rule_start_B = torch.zeros(batch, dtype=torch.long, device=device)

    def step(self, tokens_B: torch.Tensor, t: int) -> torch.Tensor:
        """Consume position t's tokens; -> bool ``[B]``, position ``t + 1`` starts a patch."""
        starts_B = self.stepper.step(tokens_B, t)
        p = t + 1
        if self.max_len is not None:
            self.last_rule_start_B = torch.where(starts_B, p, self.last_rule_start_B)
            starts_B = starts_B | ((p - self.last_rule_start_B) % self.max_len == 0)
        if p == 1:  # BOS is a patch of its own (split_first_patch)
            starts_B = torch.ones_like(starts_B)
        return starts_B
