"""Blocked sliding-window attention: the CPU kernel path, the materialised path and the oracle agree."""

from __future__ import annotations

import pytest
import torch

from blt.plugins.attention.sdpa import window as wa
from blt.plugins.attention.sdpa.plans import window_plan
from blt.attention.masks import LOCAL_BLOCK_CAUSAL, MaskDescription
from blt.plugins.attention.eager import EagerAttention


def materialised(q, k, v, plan):
    """The non-CPU branch: window copies through scaled_dot_product_attention."""
    return wa.attend_window(q, k, v, plan, views=False)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("B", "T", "W", "docs"), [(2, 512, 128, False), (2, 500, 128, False), (3, 300, 64, True),
                                                   (1, 64, 16, False), (2, 200, 48, True)])
def test_cpu_kernel_path_matches_materialised_and_eager(dtype, B, T, W, docs):
    g = torch.Generator().manual_seed(T + W)
    pos = torch.arange(T).expand(B, T)
    doc = (torch.rand(B, T, generator=g) < 0.02).long().cumsum(1) if docs else None
    plan = window_plan(MaskDescription(LOCAL_BLOCK_CAUSAL, pos, pos, doc, doc, W))
    assert plan is not None
    q, k, v = (torch.randn(B, 4, T, 32, generator=g, dtype=dtype).requires_grad_() for _ in range(3))
    grad_out = torch.randn(B, 4, T, 32, generator=g, dtype=dtype)
    eager = EagerAttention()
    want = eager.attend(q, k, v, eager.prepare(MaskDescription(LOCAL_BLOCK_CAUSAL, pos, pos, doc, doc, W)))
    want_grads = torch.autograd.grad(want, (q, k, v), grad_out)
    for fn in (wa.attend_window, materialised):
        got = fn(q, k, v, plan)
        torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)
        for a, b in zip(torch.autograd.grad(got, (q, k, v), grad_out), want_grads):
            torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)


def test_window_view_and_fold_are_adjoint():
    """<view(buf), y> == <buf, fold(y)>: the backward of the overlapping view is its exact adjoint."""
    g = torch.Generator().manual_seed(0)
    windows, C, m, H, D = 5, 4, 3, 2, 3
    buf = torch.randn((windows + m - 1) * C, H, D, generator=g, dtype=torch.float64)
    y = torch.randn(windows, H, m * C, D, generator=g, dtype=torch.float64)
    lhs = (wa._window_view(buf, windows, C, m) * y).sum()
    rhs = (buf * wa._fold(y, C, m)).sum()
    torch.testing.assert_close(lhs, rhs)
