"""``sdpa``: ``torch.nn.functional.scaled_dot_product_attention``, skipping disallowed work.

Every mask kind is supported, forward and backward on any device. ``prepare`` picks the cheapest
exact form of each mask once per batch (:mod:`blt.plugins.attention.sdpa.plans`): the kernel's ``is_causal``
for plain causal masks, query blocks of a sliding window (O(T W), not O(T^2)) for windowed local
attention, gathered key runs for the patch cross-attentions, and a dense boolean mask otherwise.
In the dense form, rows with no allowed key are given a harmless all-True mask row for the kernel
and their output is then set to zero, matching ``eager`` (no NaN in outputs or gradients).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from blt.core.config import AttentionConfig
from blt.core.hookspecs import hookimpl
from blt.core.specs import AttentionSpec
from blt.attention.backend import check_kind, dense_mask
from blt.plugins.attention.sdpa.plans import CausalPlan, Plan, RunPlan, WindowPlan, attend_runs, plan_for
from blt.plugins.attention.sdpa.window import attend_window
from blt.attention.masks import MASK_KINDS, MaskDescription


class SdpaConfig(AttentionConfig, tag="sdpa"):
    pass


class SdpaAttention:
    name = "sdpa"
    mask_kinds = MASK_KINDS

    def __init__(self, config: SdpaConfig | None = None) -> None:
        self.config = config or SdpaConfig()

    def prepare(self, mask: MaskDescription) -> Plan | tuple[torch.Tensor, torch.Tensor | None]:
        check_kind(self, mask)
        plan = plan_for(mask)
        if plan is not None:
            return plan
        allowed_B1QK, has_key_B1Q1 = dense_mask(mask)
        if bool(has_key_B1Q1.all()):
            return allowed_B1QK, None
        return allowed_B1QK | ~has_key_B1Q1, has_key_B1Q1

    def attend(self, q_BHQD: torch.Tensor, k_BHKD: torch.Tensor, v_BHKD: torch.Tensor,
               prepared: Plan | tuple[torch.Tensor, torch.Tensor | None]) -> torch.Tensor:
        if isinstance(prepared, CausalPlan):
            return F.scaled_dot_product_attention(q_BHQD, k_BHKD, v_BHKD, is_causal=True)
        if isinstance(prepared, WindowPlan):
            return attend_window(q_BHQD, k_BHKD, v_BHKD, prepared)
        if isinstance(prepared, RunPlan):
            return attend_runs(q_BHQD, k_BHKD, v_BHKD, prepared)
        kernel_mask_B1QK, has_key_B1Q1 = prepared
        o_BHQD = F.scaled_dot_product_attention(q_BHQD, k_BHKD, v_BHKD, attn_mask=kernel_mask_B1QK)
        return o_BHQD if has_key_B1Q1 is None else o_BHQD.masked_fill(~has_key_B1Q1, 0.0)

    def can_train(self, device: torch.device | str) -> str | None:
        return None


@hookimpl
def blt_register_attention():
    return [AttentionSpec(name="sdpa", config_type=SdpaConfig, build=SdpaAttention,
                          summary="torch scaled_dot_product_attention: causal flag, blocked sliding window, gathered cross-attention runs")]
