"""The config shared by the token-level transformer baselines (``[model] kind = "byte"`` and
``"bpe_token"``): the global trunk's shape, with the same field names as the BLT's ``[model]``
table so a baseline can match a BLT's trunk field for field."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from blt.core.config import ModelConfig, PositiveInt
from blt.model.config import InitStdFactor


class TokenLMConfig(ModelConfig):
    d_global: PositiveInt = 128
    global_layers: PositiveInt = 2
    global_heads: PositiveInt = 4
    global_kv_heads: PositiveInt | None = None
    global_ffn: PositiveInt | None = None   # None: int(8 d / 3) rounded up to a multiple of 256
    rope_theta: Annotated[float, Meta(gt=0)] = 10000.0
    norm_eps: Annotated[float, Meta(gt=0)] = 1e-5
    init_std_factor: InitStdFactor = "disabled"
    compile: bool = False


__all__ = ["TokenLMConfig"]
