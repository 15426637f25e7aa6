"""``eager``: attention as plain math on a dense boolean mask, softmax in float32. The oracle.

Every mask kind is supported. A query row with no allowed key outputs zeros (the library-wide
convention, see :mod:`blt.attention.backend`); the softmax never sees an all ``-inf`` row, so no NaN
appears in outputs or gradients.
"""

from __future__ import annotations

import torch

from blt.core.config import AttentionConfig
from blt.core.hookspecs import hookimpl
from blt.core.specs import AttentionSpec
from blt.attention.backend import check_kind, dense_mask
from blt.attention.masks import MASK_KINDS, MaskDescription


class EagerConfig(AttentionConfig, tag="eager"):
    pass


class EagerAttention:
    name = "eager"
    mask_kinds = MASK_KINDS

    def __init__(self, config: EagerConfig | None = None) -> None:
        self.config = config or EagerConfig()

    def prepare(self, mask: MaskDescription) -> torch.Tensor:
        check_kind(self, mask)
        return dense_mask(mask)[0]

    def attend(self, q_BHQD: torch.Tensor, k_BHKD: torch.Tensor, v_BHKD: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        allowed_B1QK = prepared
        scale = q_BHQD.shape[-1] ** -0.5
        scores_BHQK = (q_BHQD.float() @ k_BHKD.float().transpose(-1, -2)) * scale
        scores_BHQK = scores_BHQK.masked_fill(~allowed_B1QK, torch.finfo(torch.float32).min)
        # Disallowed entries get exactly 0 probability in real rows; rows with no key become all 0.
        probs_BHQK = torch.softmax(scores_BHQK, dim=-1) * allowed_B1QK
        return (probs_BHQK @ v_BHKD.float()).to(q_BHQD.dtype)

    def can_train(self, device: torch.device | str) -> str | None:
        return None


@hookimpl
def blt_register_attention():
    return [AttentionSpec(name="eager", config_type=EagerConfig, build=EagerAttention,
                          summary="plain math on a dense mask, float32 softmax (the oracle)")]
