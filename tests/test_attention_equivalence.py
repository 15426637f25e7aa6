"""Every backend that claims a mask kind matches the ``eager`` oracle on it: outputs and gradients.

CPU: sdpa (forward + backward), flex (forward; its backward does not exist on CPU). GPU tests
(marker ``gpu``): flex and sdpa forward + backward in float32 and bfloat16, flash (varlen + window,
documents) in bfloat16/float16 for the kinds it declares.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from blt.attention import masks
from blt.attention.backend import bind
from blt.model.layout import PatchLayout
from test_masks import describe, random_batch

TOL = {torch.float32: dict(atol=2e-5, rtol=1e-4), torch.bfloat16: dict(atol=3e-2, rtol=3e-2),
       torch.float16: dict(atol=5e-3, rtol=5e-3)}


def case(kind: str, seed: int, device: str = "cpu", dtype: torch.dtype = torch.float32, B: int = 2, N: int = 40,
         H: int = 2, D: int = 16, window: int = 3, k: int = 2, p_eos: float = 0.08):
    """A mask description plus q, k, v (requires_grad) for it; rows with different patch counts."""
    tokens, lengths = random_batch(seed, B, N, p_eos=p_eos)
    desc = describe(kind, PatchLayout.from_lengths(tokens.to(device), lengths.to(device)), window, k)
    _, Q, K = desc.shape
    g = torch.Generator().manual_seed(seed + 1)
    q, k_, v = (torch.randn(B, H, n, D, generator=g).to(device, dtype).requires_grad_() for n in (Q, K, K))
    return desc, q, k_, v


def run(backend, desc, q, k, v, backward: bool = True):
    o = bind(backend, desc)(q, k, v)
    if not backward:
        return o.detach(), None
    grad_out = torch.randn(o.shape, generator=torch.Generator().manual_seed(7)).to(o.device, o.dtype)
    grads = torch.autograd.grad((o * grad_out).sum(), (q, k, v))
    return o.detach(), grads


def oracle(registry, desc, q, k, v, backward: bool = True):
    """eager on float32 copies of the inputs (the oracle for low-precision backends too)."""
    q32, k32, v32 = (t.detach().float().requires_grad_() for t in (q, k, v))
    return run(registry.attention["eager"].build(registry.attention["eager"].config_type()), desc, q32, k32, v32, backward)


def assert_match(registry, name, desc, q, k, v, backward=True):
    spec = registry.attention[name]
    backend = spec.build(spec.config_type())
    o, grads = run(backend, desc, q, k, v, backward)
    o_ref, grads_ref = oracle(registry, desc, q, k, v, backward)
    assert torch.isfinite(o).all()
    torch.testing.assert_close(o.float(), o_ref, **TOL[q.dtype])
    if backward:
        for got, want, name_ in zip(grads, grads_ref, "qkv"):
            torch.testing.assert_close(got.float(), want, **TOL[q.dtype], msg=lambda m: f"grad {name_}: {m}")


def test_eager_zero_rows_and_finite_grads(registry):
    desc, q, k, v = case(masks.BYTE_TO_PATCH, seed=5)
    dense = desc.dense()
    assert (~dense.any(-1)).any(), "the case must contain slots of padding patches (no allowed key)"
    o, grads = oracle(registry, desc, q, k, v)
    assert torch.all(o.transpose(1, 2)[~dense.any(-1)] == 0)
    assert all(torch.isfinite(g).all() for g in grads)


def test_eager_matches_softmax_definition(registry):
    desc, q, k, v = case(masks.LOCAL_BLOCK_CAUSAL, seed=11)
    allowed = desc.dense()[:, None]
    scores = (q @ k.transpose(-1, -2)) / q.shape[-1] ** 0.5
    want = torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1) @ v  # every row has a key here
    torch.testing.assert_close(oracle(registry, desc, q, k, v, backward=False)[0], want.detach())


@pytest.mark.parametrize("kind", sorted(masks.MASK_KINDS))
@settings(max_examples=8)
@given(seed=st.integers(0, 10**6), window=st.integers(1, 5), k=st.integers(1, 3))
def test_cpu_trainable_backends_match_eager(registry, kind, seed, window, k):
    desc, q, k_, v = case(kind, seed, window=window, k=k)
    checked = 0
    for name, spec in registry.attention.items():
        if name == "eager" or kind not in spec.mask_kinds or spec.is_available() or spec.can_train("cpu"):
            continue
        assert_match(registry, name, desc, q, k_, v)
        checked += 1
    assert checked >= 1  # sdpa at least


def test_flex_forward_on_cpu_matches_eager(registry):
    """Compiles once per mask shape (~5-25 s each on 2 cores)."""
    assert registry.attention["flex"].can_train("cpu") is not None
    for kind in sorted(masks.MASK_KINDS):
        desc, q, k, v = case(kind, seed=3, N=24)
        assert_match(registry, "flex", desc, q.detach(), k.detach(), v.detach(), backward=False)


def test_flex_refuses_cpu_backward_with_reason(registry):
    reason = registry.attention["flex"].can_train("cpu")
    assert "backward" in reason and "CPU" in reason


def test_flash_declares_only_varlen_expressible_kinds(registry):
    spec = registry.attention["flash"]
    assert spec.mask_kinds == {masks.LOCAL_BLOCK_CAUSAL, masks.PATCH_CAUSAL, masks.PATCH_BLOCK_CAUSAL}
    if not torch.cuda.is_available():
        assert spec.is_available() is not None


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["sdpa", "flex"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind", sorted(masks.MASK_KINDS))
def test_gpu_backends_match_eager(registry, name, dtype, kind):
    for seed, N in ((1, 300), (2, 1000)):
        desc, q, k, v = case(kind, seed, device="cuda", dtype=dtype, B=2, N=N, H=4, D=64, window=64 if kind == masks.LOCAL_BLOCK_CAUSAL else 2)
        assert_match(registry, name, desc, q, k, v)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kind", [masks.LOCAL_BLOCK_CAUSAL, masks.PATCH_CAUSAL, masks.PATCH_BLOCK_CAUSAL])
@pytest.mark.parametrize("window", [None, 1, 37])
def test_gpu_flash_varlen_window_matches_eager(registry, dtype, kind, window):
    if registry.attention["flash"].is_available():
        pytest.skip(registry.attention["flash"].is_available())
    desc, q, k, v = case(kind, seed=4, device="cuda", dtype=dtype, B=3, N=700, H=4, D=64, window=window, p_eos=0.01)
    if kind != masks.LOCAL_BLOCK_CAUSAL and window is not None:
        pytest.skip("global masks have no window")
    assert_match(registry, "flash", desc, q, k, v)
