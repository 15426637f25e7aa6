"""Model-level config: the global (latent) transformer and the widths shared by local stacks."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from blt.core.config import Config, PositiveInt


class ModelConfig(Config):
    """``[model]`` table of an experiment."""

    d_local: PositiveInt = 64          # local encoder/decoder width
    d_global: PositiveInt = 128        # global transformer width
    global_layers: PositiveInt = 2
    global_heads: PositiveInt = 4
    global_kv_heads: PositiveInt | None = None
    global_ffn: PositiveInt | None = None   # None: int(8 d / 3) rounded up to a multiple of 256... see blocks
    rope_theta: Annotated[float, Meta(gt=0)] = 10000.0
    norm_eps: Annotated[float, Meta(gt=0)] = 1e-5
    block_documents: bool = True       # global attention blocked at document (EOS) boundaries
    init_std_factor: str = "disabled"  # disabled | current_depth | global_depth
