"""Exact, cheaper forms of a mask description for backends that run dense kernels (``sdpa``).

A dense ``[B, Q, K]`` mask makes the kernel compute every (query, key) pair. Three BLT mask
shapes admit an exact form that skips the disallowed work:

- **causal** (self-attention over positions ``0..T-1``, no documents, no effective window): the
  kernel's own ``is_causal`` flag; no mask tensor at all.
- **sliding window** (self-attention, window ``W`` much shorter than ``T``, optional documents):
  queries are cut into blocks of ``C`` positions (``C`` divides ``W``); block ``i`` attends only to
  the ``W + C`` keys ``[iC - W, iC + C)``, with a small ``[B, n, C, W + C]`` boolean mask. Work and
  memory are O(T W), not O(T^2). The attention itself is :mod:`blt.plugins.attention.sdpa.window`.
- **key runs** (cross-attention, no documents, key positions sorted along each row): the keys a
  query may read form one contiguous run ``kv_pos in (q_pos - W, q_pos]``. When every run is short
  (a patch's bytes, or a patch's k slots), the run's keys are gathered per query and the softmax
  runs over at most ``J`` of them: O(Q J) instead of O(Q K).

Plans are built once per batch (``plan_for``) and shared by every layer that uses the mask.
Results equal the dense computation up to floating-point rounding; rows with no allowed key give
zeros (the library-wide convention).
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F

from blt.attention.masks import MaskDescription

# A plan is used only when it computes at most this fraction of the dense (Q x K) pairs.
MAX_WORK_FRACTION = 0.75
# Sliding-window query blocks: the largest divisor of W not above this (W + C keys per block).
MAX_BLOCK = 256


@attrs.frozen(eq=False)
class CausalPlan:
    """Plain causal self-attention: the kernel's ``is_causal``."""


@attrs.frozen(eq=False)
class WindowPlan:
    """Sliding-window self-attention in query blocks of ``block``; ``allowed_BnCK`` is ``[B, n, C, W + C]``."""

    window: int
    block: int
    length: int
    allowed_BnCK: torch.Tensor
    _biases: dict = attrs.field(factory=dict, init=False, repr=False)

    def bias(self, dtype: torch.dtype) -> torch.Tensor:
        """``[B n, 1, C, W + C]`` additive mask (0 allowed, -inf not) in ``dtype``, built once per batch.

        Exactly what ``scaled_dot_product_attention`` makes of a boolean mask on every call (and
        again in backward); every layer sharing the plan reuses it.
        """
        bias = self._biases.get(dtype)
        if bias is None:
            B, n, C, K = self.allowed_BnCK.shape
            allowed = self.allowed_BnCK.view(B * n, 1, C, K)
            bias = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(~allowed, float("-inf"))
            self._biases[dtype] = bias
        return bias


@attrs.frozen(eq=False)
class RunPlan:
    """Per query, the keys ``index_BQJ`` (clamped into range) of which ``valid_BQJ`` are allowed."""

    index_BQJ: torch.Tensor
    valid_BQJ: torch.Tensor
    has_key_BQ: torch.Tensor


Plan = CausalPlan | WindowPlan | RunPlan


def _is_arange(pos_BT: torch.Tensor) -> bool:
    T = pos_BT.shape[1]
    return bool((pos_BT == torch.arange(T, device=pos_BT.device)).all())


def _self_attention(mask: MaskDescription) -> bool:
    B, Q, K = mask.shape
    if Q != K:
        return False
    same_pos = mask.q_pos_BQ is mask.kv_pos_BK or torch.equal(mask.q_pos_BQ, mask.kv_pos_BK)
    same_doc = mask.q_doc_BQ is mask.kv_doc_BK or (
        mask.q_doc_BQ is not None and mask.kv_doc_BK is not None and torch.equal(mask.q_doc_BQ, mask.kv_doc_BK))
    return same_pos and same_doc and _is_arange(mask.q_pos_BQ)


def _block_size(window: int) -> int:
    if window <= MAX_BLOCK:
        return window
    return max(c for c in range(1, MAX_BLOCK + 1) if window % c == 0)


def window_plan(mask: MaskDescription) -> WindowPlan | None:
    """Blocked sliding-window form of a self-attention mask, or None when it would not save work."""
    B, T, _ = mask.shape
    W = mask.window
    if W is None or W >= T:
        return None
    C = _block_size(W)
    n = -(-T // C)
    if n * C * (W + C) > MAX_WORK_FRACTION * T * T:
        return None
    device = mask.q_pos_BQ.device
    q_pos_nC = torch.arange(n * C, device=device).view(n, C)
    kv_pos_nK = (torch.arange(n, device=device) * C)[:, None] - W + torch.arange(W + C, device=device)
    diff = q_pos_nC[:, :, None] - kv_pos_nK[:, None, :]  # (n, C, W + C)
    allowed_nCK = (kv_pos_nK[:, None, :] >= 0) & (diff >= 0) & (diff < W)
    allowed_BnCK = allowed_nCK.expand(B, -1, -1, -1)
    if mask.q_doc_BQ is not None:
        doc_BT = mask.q_doc_BQ
        last = doc_BT[:, -1:]
        doc_q = torch.cat([doc_BT, last.expand(B, n * C - T)], 1).view(B, n, C)
        # Keys: left padding (never allowed anyway) and right padding take a clamped document.
        kv_index = kv_pos_nK.clamp(0, T - 1).flatten()
        doc_kv = doc_BT[:, kv_index].view(B, n, W + C)
        allowed_BnCK = allowed_BnCK & (doc_q[:, :, :, None] == doc_kv[:, :, None, :])
    return WindowPlan(W, C, T, allowed_BnCK.contiguous())


def run_plan(mask: MaskDescription) -> RunPlan | None:
    """Gathered-key form of a cross-attention mask whose allowed keys are short runs, or None."""
    if mask.q_doc_BQ is not None or mask.kv_doc_BK is not None:
        return None
    B, Q, K = mask.shape
    kv_pos_BK = mask.kv_pos_BK.contiguous()
    if K > 1 and not bool((kv_pos_BK[:, 1:] >= kv_pos_BK[:, :-1]).all()):
        return None
    q_pos_BQ = mask.q_pos_BQ.contiguous()
    # allowed iff q_pos - W < kv_pos <= q_pos: one run [lo, hi) of the sorted keys.
    hi_BQ = torch.searchsorted(kv_pos_BK, q_pos_BQ, right=True)
    if mask.window is None:
        lo_BQ = torch.zeros_like(hi_BQ)
    else:
        lo_BQ = torch.searchsorted(kv_pos_BK, q_pos_BQ - mask.window + 1, right=False)
    count_BQ = (hi_BQ - lo_BQ).clamp(min=0)
    J = int(count_BQ.max()) if count_BQ.numel() else 0
    if J == 0 or J > MAX_WORK_FRACTION * K:
        return None
    offsets_J = torch.arange(J, device=hi_BQ.device)
    valid_BQJ = offsets_J < count_BQ[:, :, None]
    index_BQJ = (lo_BQ[:, :, None] + offsets_J).clamp(max=K - 1)
    index_BQJ = index_BQJ + (torch.arange(B, device=hi_BQ.device) * K)[:, None, None]  # rows of the flattened keys
    return RunPlan(index_BQJ, valid_BQJ, count_BQ > 0)


def plan_for(mask: MaskDescription) -> Plan | None:
    """The cheapest exact plan for ``mask``, or None (use a dense mask)."""
    if _self_attention(mask):
        T = mask.shape[1]
        no_window = mask.window is None or mask.window >= T
        if no_window and mask.q_doc_BQ is None:
            return CausalPlan()
        return window_plan(mask)
    return run_plan(mask)


def attend_runs(q_BHQD: torch.Tensor, k_BHKD: torch.Tensor, v_BHKD: torch.Tensor, plan: RunPlan) -> torch.Tensor:
    """Attention over each query's gathered run of ``J`` keys (softmax in float32).

    ``J`` is small (a patch's k slots, or a patch's bytes), so the products are elementwise in the
    projections' ``[B, Q, H, D]`` layout; tiny batched matmuls would be slower.
    """
    B, H, Q, D = q_BHQD.shape
    K = k_BHKD.shape[2]
    J = plan.index_BQJ.shape[2]
    flat = plan.index_BQJ.reshape(-1)

    def gathered(x_BHKD: torch.Tensor) -> torch.Tensor:  # (B, Q, J, H, D)
        return x_BHKD.transpose(1, 2).reshape(B * K, H, D).index_select(0, flat).view(B, Q, J, H, D).float()

    q_BQ1HD = q_BHQD.transpose(1, 2).unsqueeze(2).float()
    scores_BQJH = (q_BQ1HD * gathered(k_BHKD)).sum(-1) * D**-0.5
    valid_BQJ1 = plan.valid_BQJ.unsqueeze(-1)
    scores_BQJH = scores_BQJH.masked_fill(~valid_BQJ1, torch.finfo(torch.float32).min)
    probs_BQJH = torch.softmax(scores_BQJH, dim=2) * valid_BQJ1  # rows with no key: all 0
    o_BQHD = (probs_BQJH.unsqueeze(-1) * gathered(v_BHKD)).sum(2)
    return o_BQHD.to(q_BHQD.dtype).transpose(1, 2)  # (B, H, Q, D)
