"""The entropy patch-start rules, vectorised over ``[B, N']`` (no loop over positions).

- global threshold θ: position ``p >= 2`` starts a patch iff ``e[p-1] > θ`` (strict);
- relative threshold θr (approximate monotonic rule): position 2 always starts, and ``p >= 3``
  starts iff ``e[p-1] - e[p-2] > θr``.
Positions 0 and 1 always start. ``N' = N + 1`` with ``include_next_token``: position N is then
decided from ``e[N-1]`` (bytes already seen).
"""

from __future__ import annotations

import torch

from blt.core.errors import InputError
from blt.core.patching import dynamic_prefix


def check_entropies(entropies: torch.Tensor, tokens_BN: torch.Tensor) -> torch.Tensor:
    """Validate given entropies against ``tokens [B, N]``: a float ``[B, N]`` (or ``[N]`` for one row).

    Returned as float32, or as they are when float64: the rules compare in float64, and rounding a
    float64 entropy to float32 first could move it across the threshold."""
    if not isinstance(entropies, torch.Tensor) or not entropies.dtype.is_floating_point:
        raise InputError(f"entropies must be a float tensor [B, N], got {getattr(entropies, 'dtype', type(entropies).__name__)}")
    e = entropies.unsqueeze(0) if entropies.dim() == 1 else entropies
    if tuple(e.shape) != tuple(tokens_BN.shape):
        raise InputError(f"entropies have shape {list(entropies.shape)}, tokens have {list(tokens_BN.shape)}; give one entropy per token")
    if e.numel() and not bool(torch.isfinite(e).all()):
        raise InputError("entropies contain NaN or infinite values")
    return e if e.dtype == torch.float64 else e.to(torch.float32)


def entropy_starts(
    entropies_BN: torch.Tensor, n_out: int, *, threshold: float | None = None, relative_threshold: float | None = None
) -> torch.Tensor:
    """Start mask ``[B, n_out]`` (``n_out`` is N or N + 1) from entropies ``[B, N]``; exactly one rule."""
    if (threshold is None) == (relative_threshold is None):
        raise InputError("give exactly one of threshold or relative_threshold")
    B = entropies_BN.shape[0]
    starts = dynamic_prefix(B, n_out, entropies_BN.device)
    if n_out <= 2:
        return starts
    # Compare in float64: a float32 difference (or a threshold rounded to float32) can flip a
    # boundary that the rule, read exactly, decides the other way.
    entropies_BN = entropies_BN.double()
    if threshold is not None:
        starts[:, 2:] = entropies_BN[:, 1 : n_out - 1] > threshold
    else:
        starts[:, 2] = True
        starts[:, 3:] = (entropies_BN[:, 2 : n_out - 1] - entropies_BN[:, 1 : n_out - 2]) > relative_threshold
    return starts


def rule_scores(entropies_BN: torch.Tensor, relative: bool) -> torch.Tensor:
    """The value each position ``p >= 2`` compares with the threshold, at index ``p - 2``: ``[B, N - 1]``.

    Global: ``e[p-1]``; relative: ``e[p-1] - e[p-2]`` (index 0, position 2, is +inf: always a start).
    Used by calibration: a position starts iff its score > θ.
    """
    entropies_BN = entropies_BN.double()  # the same precision entropy_starts compares in
    scores = entropies_BN[:, 1:].clone()
    if relative and scores.shape[1]:
        scores[:, 1:] = entropies_BN[:, 2:] - entropies_BN[:, 1:-1]
        scores[:, 0] = float("inf")
    return scores


def step_start(
    e_B: torch.Tensor, prev_e_B: torch.Tensor | None, p: int, *, threshold: float | None, relative_threshold: float | None
) -> torch.Tensor:
    """Whether position ``p`` starts a patch given ``e[p-1]`` (``e_B``) and ``e[p-2]`` (``prev_e_B``):
    the same rule as :func:`entropy_starts`, one position at a time (for streaming generation)."""
    if p <= 1 or (relative_threshold is not None and p == 2):
        return torch.ones(e_B.shape, dtype=torch.bool, device=e_B.device)
    if threshold is not None:
        return e_B.double() > threshold
    assert prev_e_B is not None
    return (e_B.double() - prev_e_B.double()) > relative_threshold
