"""The hand-derived RMSNorm backward equals autograd of the eager formula."""

from __future__ import annotations

import pytest
import torch

from blt.model.blocks import RMSNorm
from blt.model.rms_norm import can_fuse, fused_rms_norm


def eager(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * w


def test_first_and_second_derivatives_float64():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 16, dtype=torch.float64, generator=g).requires_grad_()
    w = torch.randn(16, dtype=torch.float64, generator=g).requires_grad_()
    fn = lambda a, b: fused_rms_norm(a, b, 1e-5)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w))
    assert torch.autograd.gradgradcheck(fn, (x, w))


@pytest.mark.parametrize("shape", [(7,), (2, 33, 64), (1, 4, 3, 256)])
def test_matches_eager_formula_float32(shape):
    g = torch.Generator().manual_seed(1)
    x = (3 * torch.randn(shape, generator=g)).requires_grad_()
    w = (1 + 0.1 * torch.randn(shape[-1], generator=g)).requires_grad_()
    grad_out = torch.randn(shape, generator=g)
    got = fused_rms_norm(x, w, 1e-5)
    want = eager(x, w, 1e-5)
    torch.testing.assert_close(got, want, atol=2e-6, rtol=1e-5)
    for a, b in zip(torch.autograd.grad(got, (x, w), grad_out), torch.autograd.grad(want, (x, w), grad_out)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_gradient_accumulates_into_a_second_backward():
    """retain_graph: the saved tensors are not modified in place by the first backward."""
    x = torch.randn(4, 32, requires_grad=True)
    w = torch.randn(32, requires_grad=True)
    y = fused_rms_norm(x, w, 1e-5).square().sum()
    first = torch.autograd.grad(y, (x, w), retain_graph=True)
    second = torch.autograd.grad(y, (x, w))
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_module_uses_eager_formula_for_other_dtypes():
    norm = RMSNorm(8)
    x = torch.randn(2, 8, dtype=torch.bfloat16)
    assert not can_fuse(x, norm.weight)
    out = norm(x)
    assert out.dtype == torch.float32  # bf16 activations times a float32 weight promote, as before
    torch.testing.assert_close(out, eager(x, norm.weight, norm.eps))
    assert can_fuse(x.float(), norm.weight)
