"""``flex``: FlexAttention with BlockMasks built once per batch (``create_block_mask``), compiled.

On CUDA the BlockMask itself is built by a compiled ``create_block_mask`` (``compile_block_mask``,
on by default): uncompiled, it evaluates ``mask_mod`` over the dense (Q, K) grid for every batch,
which on an H200 made a flex training step 1.7x slower (bench/results/gpu_flex_check_h200_round2.json).

Every mask kind is supported: the description's rule is the ``mask_mod``. The kernel is compiled
once per backend instance and device type. On CUDA it is compiled with dynamic sizes: sequence
lengths and patch counts change from batch to batch and the mask kinds differ in (Q, K), so a
static compile recompiles for every new shape and, past dynamo's recompile limit (8), silently
falls back to the unfused path that materialises the whole score matrix. On CPU the compile stays
static (torch's C++ FlexAttention template does not compile with symbolic sizes), which is fine
for its use there (forward-only inference on a few shapes). Inputs are made contiguous
``[B, H, T, D]`` before the call: layers hand over transposed ``[B, T, H, D]`` views or RoPE'd
copies, and a stride change is a recompile too. Rows with no allowed
key output zeros (FlexAttention's own behaviour, matching ``eager``). On CPU, FlexAttention has
forward only: ``can_train`` says so and ``build_model(..., training=True)`` / a forward that would
build a graph refuse up front. Inference on CPU works under ``torch.no_grad()`` (the first call
compiles, which takes tens of seconds).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from blt.core.config import AttentionConfig
from blt.core.hookspecs import hookimpl
from blt.core.specs import AttentionSpec
from blt.attention.backend import check_kind
from blt.attention.masks import MASK_KINDS, MaskDescription


class FlexConfig(AttentionConfig, tag="flex"):
    compile: bool = True    # torch.compile the kernel (uncompiled flex is a slow reference path)
    compile_block_mask: bool = True  # on CUDA, build each batch's BlockMask with a compiled mask_mod sweep


def is_available() -> str | None:
    try:
        import torch.nn.attention.flex_attention  # noqa: F401
    except ImportError as exc:  # pragma: no cover - torch >= 2.5 ships it
        return f"torch {torch.__version__} has no FlexAttention ({exc})"
    return None


def can_train(device: torch.device | str) -> str | None:
    if torch.device(device).type == "cpu":
        return f"FlexAttention has no backward on CPU (torch {torch.__version__}); train with sdpa or eager, or on CUDA"
    return None


class FlexAttention:
    name = "flex"
    mask_kinds = MASK_KINDS

    def __init__(self, config: FlexConfig | None = None) -> None:
        from torch.nn.attention.flex_attention import flex_attention

        self.config = config or FlexConfig()
        self._flex = flex_attention
        self._kernels: dict[str, Callable[..., torch.Tensor]] = {}  # device type -> kernel, compiled once

    def kernel(self, device: torch.device) -> Callable[..., torch.Tensor]:
        """The (compiled) kernel for ``device``'s type: dynamic sizes on CUDA, static on CPU (module docstring)."""
        kernel = self._kernels.get(device.type)
        if kernel is None:
            kernel = torch.compile(self._flex, dynamic=device.type != "cpu") if self.config.compile else self._flex
            self._kernels[device.type] = kernel
        return kernel

    def prepare(self, mask: MaskDescription) -> Any:
        from torch.nn.attention.flex_attention import create_block_mask

        check_kind(self, mask)
        B, Q, K = mask.shape

        def mask_mod(b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
            return mask.allowed(b, q, kv)

        device = mask.q_pos_BQ.device
        # Uncompiled, create_block_mask evaluates mask_mod on the dense (Q, K) grid through vmap for
        # every batch: on CUDA that costs as much as the attention itself. Compiled, it is one fused
        # kernel (dynamic sizes after the first new shape). CPU keeps the uncompiled path (forward-only
        # inference, where a compile per shape would dominate).
        if not (self.config.compile_block_mask and device.type == "cuda"):
            return create_block_mask(mask_mod, B, None, Q, K, device=device)
        with warnings.catch_warnings():  # torch >= 2.11 calls the flag deprecated in favour of torch.compile(create_block_mask)
            warnings.filterwarnings("ignore", message=".*_compile flag on create_block_mask", category=DeprecationWarning)
            return create_block_mask(mask_mod, B, None, Q, K, device=device, _compile=True)

    def attend(self, q_BHQD: torch.Tensor, k_BHKD: torch.Tensor, v_BHKD: torch.Tensor, prepared: Any) -> torch.Tensor:
        # One memory layout for every call (no-ops when already contiguous).
        kernel = self.kernel(q_BHQD.device)
        return kernel(q_BHQD.contiguous(), k_BHKD.contiguous(), v_BHKD.contiguous(), block_mask=prepared)

    def step_backend(self) -> Any:
        """Cached generation attends one query per step; rebuilding this backend's prepared mask
        every step would cost more than the step, so steps use sdpa (same maths, dense masks)."""
        from blt.plugins.attention.sdpa import SdpaAttention

        return SdpaAttention()

    def can_train(self, device: torch.device | str) -> str | None:
        return can_train(device)


@hookimpl
def blt_register_attention():
    return [AttentionSpec(name="flex", config_type=FlexConfig, build=FlexAttention,
                          is_available=is_available, can_train=can_train,
                          summary="FlexAttention with per-batch BlockMasks (compiled); no backward on CPU")]
