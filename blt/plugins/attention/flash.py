"""``flash``: the flash-attn package's variable-length kernels, with sliding-window support.

Only masks that varlen + window express exactly are declared: causal attention within documents,
with or without a window (``local_block_causal``, ``patch_causal``, ``patch_block_causal``). The
batch is flattened to one packed sequence and cut into documents (and rows) via ``cu_seqlens``;
``window_size=(W - 1, 0)`` keeps keys t-W+1..t. The cross-attention masks are not declared, so a
model that needs them refuses ``flash`` at build time. Needs CUDA, flash-attn and fp16/bf16 inputs.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import attrs
import torch

from blt.core.config import AttentionConfig
from blt.core.errors import UnavailableError
from blt.core.hookspecs import hookimpl
from blt.core.specs import AttentionSpec
from blt.attention.backend import check_kind
from blt.attention.masks import LOCAL_BLOCK_CAUSAL, PATCH_BLOCK_CAUSAL, PATCH_CAUSAL, MaskDescription

FLASH_MASK_KINDS = frozenset({LOCAL_BLOCK_CAUSAL, PATCH_CAUSAL, PATCH_BLOCK_CAUSAL})


class FlashConfig(AttentionConfig, tag="flash"):
    pass


def is_available() -> str | None:
    if importlib.util.find_spec("flash_attn") is None:
        return "flash-attn is not installed (pip install flash-attn)"
    if not torch.cuda.is_available():
        return "flash-attn needs a CUDA device"
    try:
        import flash_attn  # noqa: F401
    except Exception as exc:  # a wheel built for another torch/CUDA fails here
        return f"flash-attn failed to import: {type(exc).__name__}: {exc}"
    return None


def can_train(device: torch.device | str) -> str | None:
    return None if torch.device(device).type == "cuda" else "flash-attn runs only on CUDA"


@attrs.frozen(eq=False)
class Varlen:
    """Packed-sequence form of a mask: document offsets into the flattened ``B*T`` positions."""

    cu_seqlens: torch.Tensor  # int32 [S + 1]
    max_seqlen: int
    window_size: tuple[int, int]


def varlen_form(mask: MaskDescription) -> Varlen:
    """Offsets of each (row, document) run in the flattened batch; causal + window within runs."""
    B, T, K = mask.shape
    if T != K or not bool((mask.q_pos_BQ == mask.kv_pos_BK).all()):
        raise UnavailableError(f"flash: mask {mask.kind!r} is not a self-attention mask over one sequence")
    doc_BT = mask.q_doc_BQ if mask.q_doc_BQ is not None else torch.zeros_like(mask.q_pos_BQ)
    segment = (doc_BT + torch.arange(B, device=doc_BT.device)[:, None] * (T + 1)).flatten()  # unique per (row, doc)
    is_start = torch.ones_like(segment, dtype=torch.bool)
    is_start[1:] = segment[1:] != segment[:-1]
    starts = is_start.nonzero().flatten()
    cu = torch.cat([starts, starts.new_tensor([B * T])]).to(torch.int32)
    window = (mask.window - 1, 0) if mask.window is not None else (-1, -1)
    return Varlen(cu, int((cu[1:] - cu[:-1]).max()), window)


class FlashAttention:
    name = "flash"
    mask_kinds = FLASH_MASK_KINDS

    def __init__(self, config: FlashConfig | None = None) -> None:
        reason = is_available()
        if reason is not None:
            raise UnavailableError(f"attention backend 'flash' is unavailable: {reason}")
        from flash_attn import flash_attn_varlen_func

        self.config = config or FlashConfig()
        self._varlen = flash_attn_varlen_func

    def prepare(self, mask: MaskDescription) -> Varlen:
        check_kind(self, mask)
        return varlen_form(mask)

    def attend(self, q_BHTD: torch.Tensor, k_BHTD: torch.Tensor, v_BHTD: torch.Tensor, prepared: Varlen) -> torch.Tensor:
        if q_BHTD.dtype not in (torch.float16, torch.bfloat16):
            raise UnavailableError(f"flash-attn kernels need float16 or bfloat16 inputs, got {q_BHTD.dtype} "
                                   "(use torch.autocast or convert the model)")
        B, H, T, D = q_BHTD.shape

        def packed(x_BHTD: torch.Tensor) -> torch.Tensor:
            return x_BHTD.transpose(1, 2).reshape(B * T, H, D)  # (B*T, H, D)

        o = self._varlen(packed(q_BHTD), packed(k_BHTD), packed(v_BHTD), prepared.cu_seqlens, prepared.cu_seqlens,
                         prepared.max_seqlen, prepared.max_seqlen, causal=True, window_size=prepared.window_size)
        return o.view(B, T, H, D).transpose(1, 2)

    def step_backend(self) -> Any:
        """Cached generation attends one query per step; rebuilding this backend's prepared mask
        every step would cost more than the step, so steps use sdpa (same maths, dense masks)."""
        from blt.plugins.attention.sdpa import SdpaAttention

        return SdpaAttention()

    def can_train(self, device: torch.device | str) -> str | None:
        return can_train(device)


@hookimpl
def blt_register_attention():
    return [AttentionSpec(name="flash", config_type=FlashConfig, build=FlashAttention,
                          is_available=is_available,
                          can_train=can_train,
                          summary="flash-attn varlen kernels with sliding window (causal masks within documents only)")]
