"""Incremental patching: after byte t is known, does position t + 1 start a patch?

This is the ``include_next_token`` rule applied one position at a time. A *start stepper* consumes
the token at position t of every row and returns ``starts_B``, whether position ``t + 1`` opens a
patch by the patcher's rule (before ``max_patch_length``), at a cost that does not grow with t.
Each patcher provides its own as ``start_stepper(batch)``, in its plugin file; for an incremental
patcher without one, a correct but O(t)-per-byte fallback re-patches the whole prefix. A row's
documents are patched alone, as in training (:mod:`blt.generate.documents`): a stepper restarts
its rule after each EOS it is given.

:class:`PatchStarts` then applies what every patcher shares, in the order ``patch`` + the model's
input convention apply them: the position after an EOS starts a patch (a new document),
``max_patch_length`` splits (left to right, counted from the last rule start) and the BOS rule of :func:`blt.model.layout.split_first_patch` (position 1 always starts).
"""

from __future__ import annotations

import copy
from typing import Any, Protocol

import torch

from blt.core.errors import UnavailableError
from blt.tokens import EOS_ID


class StartStepper(Protocol):
    """May also offer ``step_values(tokens: list[int], t) -> list[bool]``, the same rule on Python
    values (cheaper for rules of a few scalars per row); generation then calls that instead."""

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

    def snapshot(self) -> int:
        return len(self.history)

    def restore(self, mark: int) -> None:
        del self.history[mark:]

    def step(self, tokens_B: torch.Tensor, t: int) -> torch.Tensor:
        from blt.generate.documents import row_lengths

        self.history.append(tokens_B)
        prefix_BN = torch.stack(self.history, dim=1)
        starts = []
        for row_N in prefix_BN:  # each document of the row patched alone
            ends_P = torch.cumsum(row_lengths(self.patcher, row_N), dim=0)
            starts.append(bool((ends_P == t + 1).any()))  # a patch ends at t: t + 1 starts one
        return torch.tensor(starts, dtype=torch.bool, device=tokens_B.device)


def shared_modules(obj: Any, depth: int = 3) -> dict:
    """A ``copy.deepcopy`` memo that keeps every ``nn.Module`` reachable from ``obj``'s attributes
    (``depth`` levels down) shared: copying a stepper copies its state, not its model."""
    memo: dict = {}

    def visit(value: Any, level: int) -> None:
        if isinstance(value, torch.nn.Module):
            memo[id(value)] = value
        elif level > 0 and hasattr(value, "__dict__") and not isinstance(value, (type, torch.Tensor)):
            for item in vars(value).values():
                visit(item, level - 1)
        elif level > 0 and isinstance(value, (list, tuple, dict)):
            for item in value.values() if isinstance(value, dict) else value:
                visit(item, level - 1)

    visit(obj, depth)
    return memo


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
        self.last_rule_start = [0] * batch
        self.device = device

    def snapshot(self) -> tuple:
        """The state after the last step, for :meth:`restore` (speculative decoding). A stepper
        without ``snapshot``/``restore`` of its own is deep-copied, its modules shared."""
        own = getattr(self.stepper, "snapshot", None)
        mark = own() if callable(own) else copy.deepcopy(self.stepper, shared_modules(self.stepper))
        return list(self.last_rule_start), callable(own), mark

    def restore(self, mark: tuple) -> None:
        last, own, stepper = mark
        self.last_rule_start = list(last)
        if own:
            self.stepper.restore(stepper)
        else:
            self.stepper = copy.deepcopy(stepper, shared_modules(stepper))

    def commit(self) -> None:
        """Marks taken so far will not be restored (a stepper with ``commit`` frees what they hold)."""
        own = getattr(self.stepper, "commit", None)
        if callable(own):
            own()

    def step(self, tokens_B: torch.Tensor, t: int) -> torch.Tensor:
        """Consume position t's tokens; -> bool ``[B]``, position ``t + 1`` starts a patch."""
        return torch.tensor(self.step_list(tokens_B, tokens_B.tolist(), t), dtype=torch.bool, device=self.device)

    def step_list(self, tokens_B: torch.Tensor, tokens: list[int], t: int) -> list[bool]:
        """:meth:`step` with the tokens also given as a list; the shared rules run on Python
        values (a handful of scalars per row costs less than as many tiny tensor ops)."""
        values = getattr(self.stepper, "step_values", None)  # optional: the rule on Python values
        rule = values(tokens, t) if callable(values) else self.stepper.step(tokens_B, t).tolist()
        p = t + 1
        starts = []
        for b, token in enumerate(tokens):
            start = rule[b] or token == EOS_ID  # a new document starts a patch
            if self.max_len is not None:
                if start:
                    self.last_rule_start[b] = p
                start = start or (p - self.last_rule_start[b]) % self.max_len == 0
            starts.append(start)
        if p == 1:  # BOS is a patch of its own (split_first_patch); not a rule start for max_patch_length
            return [True] * len(tokens)
        return starts
