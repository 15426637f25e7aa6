"""Blocked sliding-window attention for a :class:`~blt.plugins.attention.sdpa.plans.WindowPlan`.

Queries are cut into ``n`` blocks of ``C`` positions; block ``i`` of row ``b`` (batch entry
``b n + i``) attends to the ``W + C`` keys ``[iC - W, iC + C)`` under the plan's additive mask.
Keys and values are laid out once in a flat buffer ``[W + B n C, H, D]`` (``W`` zero rows, then
every row's ``n C`` positions back to back), so the window of batch entry ``w`` is rows
``[w C, w C + W + C)`` of the buffer. The first window of row ``b > 0`` then reaches into the
end of row ``b - 1``: those keys sit at negative positions of row ``b``, which the mask never
allows, so they carry exactly zero weight.

- **CPU** (:class:`_CpuWindowAttention`): the windows are overlapping strided *views* of the
  buffer handed straight to the fused CPU flash-attention kernel (no ``[B n, H, W + C, D]``
  copies), and the backward folds the window gradients back with ``m = (W + C) / C`` strided
  adds.
- **Other devices**: the windows are materialised (:class:`_Windows`, a copy with the same
  folding backward) and go through ``scaled_dot_product_attention``.

Both equal dense masked attention up to floating-point rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from blt.plugins.attention.sdpa.plans import WindowPlan


def _window_view(buf_LHD: torch.Tensor, windows: int, C: int, m: int) -> torch.Tensor:
    """``[windows, H, m C, D]`` overlapping view: window ``w`` is rows ``[w C, (w + m) C)`` of the buffer."""
    _, H, D = buf_LHD.shape
    sL, sH, sD = buf_LHD.stride()
    return buf_LHD.as_strided((windows, H, m * C, D), (C * sL, sH, sL, sD), buf_LHD.storage_offset())


def _fold(grad_wHKD: torch.Tensor, C: int, m: int) -> torch.Tensor:
    """Adjoint of :func:`_window_view`: ``[W + windows C, H, D]`` buffer gradient (``m`` strided adds)."""
    windows, H, _, D = grad_wHKD.shape
    grad_wmCHD = grad_wHKD.transpose(1, 2).reshape(windows, m, C, H, D)
    out = grad_wHKD.new_empty(windows + m - 1, C, H, D)
    out[:windows].copy_(grad_wmCHD[:, 0])  # the first chunk initialises, the rest accumulate
    out[windows:].zero_()
    for j in range(1, m):
        out[j:j + windows] += grad_wmCHD[:, j]
    return out.view((windows + m - 1) * C, H, D)


class _CpuWindowAttention(torch.autograd.Function):
    """The CPU flash-attention kernel over overlapping window views of flat key/value buffers."""

    @staticmethod
    def forward(ctx, q_wHCD, k_buf, v_buf, bias, C: int, m: int):
        windows = q_wHCD.shape[0]
        k_win, v_win = _window_view(k_buf, windows, C, m), _window_view(v_buf, windows, C, m)
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q_wHCD, k_win, v_win, attn_mask=bias)
        ctx.save_for_backward(q_wHCD, k_buf, v_buf, bias, out, lse)
        ctx.dims = (C, m)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q_wHCD, k_buf, v_buf, bias, out, lse = ctx.saved_tensors
        C, m = ctx.dims
        windows = q_wHCD.shape[0]
        k_win, v_win = _window_view(k_buf, windows, C, m), _window_view(v_buf, windows, C, m)
        grad_q, grad_k, grad_v = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
            grad_out, q_wHCD, k_win, v_win, out, lse, 0.0, False, attn_mask=bias)
        return grad_q, _fold(grad_k, C, m), _fold(grad_v, C, m), None, None, None


class _Windows(torch.autograd.Function):
    """Materialised :func:`_window_view` (a copy), with :func:`_fold` as its backward."""

    @staticmethod
    def forward(ctx, buf_LHD: torch.Tensor, windows: int, C: int, m: int) -> torch.Tensor:
        ctx.dims = (C, m)
        return _window_view(buf_LHD, windows, C, m).contiguous()

    @staticmethod
    def backward(ctx, grad_wHKD: torch.Tensor):
        C, m = ctx.dims
        return _fold(grad_wHKD, C, m), None, None, None


def _flat_buffer(x_BHTD: torch.Tensor, W: int, pad: int) -> torch.Tensor:
    """``[W + B (T + pad), H, D]``: ``W`` zero rows, then each row's positions (right-padded with zeros)."""
    B, H, T, D = x_BHTD.shape
    x_BTHD = x_BHTD.transpose(1, 2)
    if pad:
        x_BTHD = F.pad(x_BTHD, (0, 0, 0, 0, 0, pad))
    return torch.cat([x_BTHD.new_zeros(W, H, D), x_BTHD.reshape(B * (T + pad), H, D)])


def attend_window(q_BHTD: torch.Tensor, k_BHTD: torch.Tensor, v_BHTD: torch.Tensor, plan: WindowPlan,
                  views: bool | None = None) -> torch.Tensor:
    """Sliding-window attention under ``plan``: ``[B, H, T, D]`` in, ``[B, H, T, D]`` out.

    ``views``: use the CPU kernel on window views (default: on CPU); False materialises the windows.
    """
    B, H, T, D = q_BHTD.shape
    W, C = plan.window, plan.block
    n = plan.allowed_BnCK.shape[1]
    m = (W + C) // C
    pad = n * C - T
    q_BTHD = q_BHTD.transpose(1, 2)
    q_wHCD = (F.pad(q_BTHD, (0, 0, 0, 0, 0, pad)) if pad else q_BTHD).reshape(B * n, C, H, D).transpose(1, 2)
    k_buf, v_buf = _flat_buffer(k_BHTD, W, pad), _flat_buffer(v_BHTD, W, pad)
    bias = plan.bias(q_BHTD.dtype)
    if views is None:
        views = q_BHTD.device.type == "cpu"
    if views:
        o_wHCD = _CpuWindowAttention.apply(q_wHCD, k_buf, v_buf, bias, C, m)
    else:
        windows = B * n
        o_wHCD = F.scaled_dot_product_attention(q_wHCD, _Windows.apply(k_buf, windows, C, m),
                                                _Windows.apply(v_buf, windows, C, m), attn_mask=bias)
    o_BTHD = o_wHCD.transpose(1, 2).reshape(B, n * C, H, D)[:, :T]
    return o_BTHD.transpose(1, 2)
