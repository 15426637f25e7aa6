"""``[model] kind = "dynamic_chunking"``: an H-Net (Hwang, Wang & Gu, arXiv 2507.07955) with
Transformer blocks, one or two stages of learned chunking.

Levels: level 0 is the bytes, level ``s`` the chunks of stage ``s``; the innermost level is the
main network's. Per level: ``d_model`` and ``heads`` (``stages + 1`` entries each, the last the main
network's) and ``ffn`` (SwiGLU hidden width; None: the reference formula). Per stage:
``encoder_layers``, ``decoder_layers`` and ``compression``, the stage's target ratio of its input
positions to its chunks (``[6.0]``: about one stage-1 chunk per 6 bytes; ``[3.0, 2.0]``: 3 bytes per
stage-1 chunk, 2 stage-1 chunks per stage-2 chunk). The ratio loss (weight ``ratio_loss_weight``,
the paper's alpha = 0.03) steers each stage's boundary rate to ``1 / compression``.

Measured at this library's scale (a few hundred CPU steps on the built-in corpus): the paper's
alpha = 0.03 lets the language-modelling gradient win (2.87 bytes per chunk over the whole
held-out split after 451 steps, for a target of 5); ``ratio_loss_weight = 1.0`` keeps it near
the target (5.10 and 4.93 bytes per chunk, seeds 0 and 1; 3.49 and 3.63 for a target of 3.6).
``residual_init = "normal"`` (truncated normal, like every projection here) learned faster than
``"zero"`` (the decoder then first reads only the chunks: every byte of a chunk gets the same
input): held-out 3.94 against 4.27 bits per byte after 200 steps.

The model chooses its own boundaries: it does not read the patcher's lengths (use the ``byte``
or ``strided`` patcher, whose rows are plain bytes; ``strided`` with ``patch_size`` set to the target
bytes per chunk makes the patcher's reported average patch size match the model's).
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from blt.core.config import ModelConfig, PositiveInt
from blt.core.errors import ConfigError
from blt.model.config import InitStdFactor

Compression = Annotated[float, Meta(gt=1.0)]


class DynamicChunkingConfig(ModelConfig, tag="dynamic_chunking"):
    stages: Literal[1, 2] = 1
    d_model: tuple[PositiveInt, ...] = (64, 128)        # width per level: bytes, stage-1 chunks[, stage-2 chunks]
    heads: tuple[PositiveInt, ...] = (2, 4)             # attention heads per level
    ffn: tuple[PositiveInt, ...] | None = None          # SwiGLU hidden width per level (None: int(8 d / 3) to 256)
    encoder_layers: tuple[PositiveInt, ...] = (1,)      # per stage
    decoder_layers: tuple[PositiveInt, ...] = (1,)      # per stage
    main_layers: PositiveInt = 2                        # the innermost (main) network
    compression: tuple[Compression, ...] = (4.0,)       # target positions per chunk, per stage
    ratio_loss_weight: Annotated[float, Meta(ge=0)] = 0.03
    byte_window: PositiveInt | None = None              # byte-level attention window (None: whole document)
    rope_theta: Annotated[float, Meta(gt=0)] = 10000.0
    norm_eps: Annotated[float, Meta(gt=0)] = 1e-5
    init_std_factor: InitStdFactor = "disabled"
    residual_init: Literal["zero", "normal"] = "normal"  # the encoder-to-decoder residual projection (below)


def check_config(config: DynamicChunkingConfig) -> None:
    """ConfigError unless every per-level / per-stage list has its length and heads fit the widths."""
    from blt.model.local import check_heads

    levels, stages = config.stages + 1, config.stages
    for name, want in (("d_model", levels), ("heads", levels), ("ffn", levels), ("encoder_layers", stages),
                       ("decoder_layers", stages), ("compression", stages)):
        value = getattr(config, name)
        if value is not None and len(value) != want:
            per = "level (stages + 1)" if want == levels else "stage"
            raise ConfigError(f"$.model.{name}: expected {want} entries (one per {per}, stages = {stages}), got {len(value)}")
    for level, (d, h) in enumerate(zip(config.d_model, config.heads)):
        check_heads(f"$.model.heads[{level}]", d, h, None)


__all__ = ["DynamicChunkingConfig", "check_config"]
