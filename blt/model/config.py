"""The BLT model's config (``[model] kind = "blt"``: global transformer, shared widths, init) and
the field sets shared by local encoder / decoder configs. Every field here has an effect."""

from __future__ import annotations

from typing import Annotated, Literal

import attrs
from msgspec import Meta

from blt.core.config import DecoderConfig, EncoderConfig, ModelConfig, PositiveInt

InitStdFactor = Literal["disabled", "current_depth", "global_depth", "dim_ratio"]
NonNegativeInt = Annotated[int, Meta(ge=0)]


class BltConfig(ModelConfig, tag="blt"):
    """``[model]`` table of a BLT experiment (the default model kind)."""

    d_local: PositiveInt = 64               # local encoder/decoder width (byte states)
    d_global: PositiveInt = 128             # global transformer width
    global_layers: PositiveInt = 2
    global_heads: PositiveInt = 4
    global_kv_heads: PositiveInt | None = None   # None: = global_heads
    global_ffn: PositiveInt | None = None   # None: int(8 d / 3) rounded up to a multiple of 256
    rope_theta: Annotated[float, Meta(gt=0)] = 10000.0   # encoder, global and decoder RoPE
    norm_eps: Annotated[float, Meta(gt=0)] = 1e-5
    block_documents: bool = True            # global attention blocked at document (EOS) boundaries
    init_std_factor: InitStdFactor = "disabled"  # divisor of output-projection init std (the reference's init_std_factor)
    compile: bool = False                   # torch.compile each transformer layer's elementwise work (norms,
                                            # RoPE, SwiGLU, residuals) around the attention call; same maths,
                                            # fp rounding differs; ~5% faster CPU training step, ~30 s to compile


class LocalEncoderConfig(EncoderConfig):
    """Fields every builtin local encoder has: its transformer stack and hash n-gram embeddings."""

    layers: PositiveInt = 1
    heads: PositiveInt = 4
    kv_heads: PositiveInt | None = None
    ffn_dim: PositiveInt | None = None      # None: int(8 d / 3) rounded up to a multiple of 256
    window: PositiveInt | None = 512        # sliding window in bytes (within a document); None: unlimited
    block_documents: bool = True            # local attention stops at EOS (Hugging Face's port: False)
    hash_sizes: tuple[PositiveInt, ...] = (3, 4, 5, 6, 7, 8)  # n-gram sizes; () disables hash embeddings
    hash_functions: NonNegativeInt = 1      # hash functions per n-gram size; 0 disables hash embeddings
    hash_buckets: PositiveInt = 30000       # rows per hash table (V)


class LocalDecoderConfig(DecoderConfig):
    """Fields every builtin local decoder has: its transformer stack."""

    layers: PositiveInt = 2
    heads: PositiveInt = 4
    kv_heads: PositiveInt | None = None
    ffn_dim: PositiveInt | None = None
    window: PositiveInt | None = 512
    block_documents: bool = True            # local attention stops at EOS (Hugging Face's port: False)


@attrs.frozen
class SharedDims:
    """What ``[model]`` tells every encoder / decoder builder."""

    d_local: int
    d_global: int
    rope_theta: float
    norm_eps: float
    init_std_factor: str

    @classmethod
    def from_config(cls, model: BltConfig) -> SharedDims:
        return cls(model.d_local, model.d_global, model.rope_theta, model.norm_eps, model.init_std_factor)
