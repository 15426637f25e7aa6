"""``sdpa``: ``torch.nn.functional.scaled_dot_product_attention`` with dense boolean masks.

Every mask kind is supported, forward and backward on any device. Rows with no allowed key are
given a harmless all-True mask row for the kernel and their output is then set to zero, matching
``eager`` exactly (no NaN in outputs or gradients).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from blt.core.config import AttentionConfig
from blt.core.hookspecs import hookimpl
from blt.core.specs import AttentionSpec
from blt.model.attention import check_kind, dense_mask
from blt.model.masks import MASK_KINDS, MaskDescription


class SdpaConfig(AttentionConfig, tag="sdpa"):
    pass


class SdpaAttention:
    name = "sdpa"
    mask_kinds = MASK_KINDS

    def __init__(self, config: SdpaConfig | None = None) -> None:
        self.config = config or SdpaConfig()

    def prepare(self, mask: MaskDescription) -> tuple[torch.Tensor, torch.Tensor]:
        check_kind(self, mask)
        allowed_B1QK, has_key_B1Q1 = dense_mask(mask)
        return allowed_B1QK | ~has_key_B1Q1, has_key_B1Q1

    def attend(self, q_BHQD: torch.Tensor, k_BHKD: torch.Tensor, v_BHKD: torch.Tensor,
               prepared: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        kernel_mask_B1QK, has_key_B1Q1 = prepared
        o_BHQD = F.scaled_dot_product_attention(q_BHQD, k_BHKD, v_BHKD, attn_mask=kernel_mask_B1QK)
        return o_BHQD.masked_fill(~has_key_B1Q1, 0.0)

    def can_train(self, device: torch.device | str) -> str | None:
        return None


@hookimpl
def blt_register_attention():
    return [AttentionSpec(name="sdpa", config_type=SdpaConfig, build=SdpaAttention, mask_kinds=MASK_KINDS,
                          summary="torch scaled_dot_product_attention with dense boolean masks")]
