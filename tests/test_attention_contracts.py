"""The attention-backend contract suite: builtins pass (or report why they cannot run here), and
each kind of broken backend is caught by the contract that names its fault."""

from __future__ import annotations

import pytest
import torch

import blt
from blt.core.errors import UnavailableError
from blt.core.specs import AttentionSpec
from blt.attention import masks
from blt.plugins.attention.eager import EagerAttention, EagerConfig
from blt.plugins.attention.sdpa import SdpaAttention, SdpaConfig
from blt.testing import check_attention, run_attention_contracts
from blt.testing.attention_contracts import random_layout


def by_name(results):
    return {r.name: r for r in results}


@pytest.mark.parametrize("kind", ["eager", "sdpa"])
def test_cpu_backends_pass_forward_and_backward(registry, kind):
    results = check_attention(kind, registry=registry, max_examples=5)
    equal = [r for r in results if r.name.startswith("equals_eager[")]
    assert len(equal) == len(masks.MASK_KINDS) and all(r.status == "pass" for r in results)
    assert all("gradients" in r.detail for r in equal)


def test_flash_without_its_package_or_gpu_is_skipped_with_the_reason(registry):
    reason = registry.attention["flash"].is_available()
    if reason is None:
        pytest.skip("flash-attn is usable here")
    results = run_attention_contracts("flash", registry=registry)
    assert all(r.skipped and r.detail == f"unavailable: {reason}" for r in results)
    assert [r.name for r in results][:2] == ["available", "mask_kinds"]


def test_flex_on_cpu_skips_equivalence_unless_forward_only(registry):
    if torch.cuda.is_available():
        pytest.skip("flex trains on CUDA")
    skipped = by_name(run_attention_contracts("flex", registry=registry))
    assert skipped["equals_eager[patch_causal]"].skipped
    assert "cannot train on cpu" in skipped["equals_eager[patch_causal]"].detail
    assert "--forward-only" in skipped["equals_eager[patch_causal]"].detail
    # forward only, uncompiled (compiling per mask shape takes tens of seconds on CPU)
    forward = run_attention_contracts("flex", registry=registry, config={"compile": False}, backward=False, max_examples=3)
    assert all(r.status == "pass" for r in forward)
    assert "forward only" in by_name(forward)["equals_eager[byte_to_patch]"].detail


# --- broken backends --------------------------------------------------------------------------

class IgnoresWindow(SdpaAttention):
    name = "ignores_window"

    def prepare(self, mask):
        import attrs

        return super().prepare(attrs.evolve(mask, window=None) if mask.kind == masks.LOCAL_BLOCK_CAUSAL else mask)


class DetachedValues(EagerAttention):
    """Right outputs, but no gradient reaches v."""

    name = "detached_values"

    def attend(self, q, k, v, prepared):
        return super().attend(q, k, v.detach(), prepared)


class Unchecked(EagerAttention):
    """Declares one kind but never refuses the others."""

    name = "unchecked"
    mask_kinds = frozenset({masks.LOCAL_BLOCK_CAUSAL})

    def prepare(self, mask):
        return mask.dense()[:, None]


class Misdeclared(EagerAttention):
    name = "misdeclared"
    mask_kinds = frozenset({masks.LOCAL_BLOCK_CAUSAL, masks.PATCH_CAUSAL})


def _broken_build(config):
    raise RuntimeError("CUDA driver missing")


def _spec(name, build, kinds, **kw):
    config = type(f"{name.title()}Config", (EagerConfig,), {}, tag=name)
    return AttentionSpec(name=name, config_type=config, build=build, mask_kinds=kinds, **kw)


class BrokenBackends:
    @blt.hookimpl
    def blt_register_attention(self):
        return [
            _spec("ignores_window", lambda c: IgnoresWindow(SdpaConfig()), masks.MASK_KINDS),
            _spec("detached_values", DetachedValues, masks.MASK_KINDS),
            _spec("unchecked", Unchecked, Unchecked.mask_kinds),
            _spec("misdeclared", Misdeclared, {masks.LOCAL_BLOCK_CAUSAL}),
            _spec("crashes", _broken_build, masks.MASK_KINDS, is_available=lambda: "needs a GPU"),
        ]


@pytest.fixture(scope="module")
def broken():
    return blt.make_registry(autoload=False, plugins=[BrokenBackends()])


def test_a_backend_ignoring_the_window_fails_that_mask_kind_only(broken):
    results = by_name(run_attention_contracts("ignores_window", registry=broken, max_examples=8))
    bad = results["equals_eager[local_block_causal]"]
    assert not bad.passed and "output differs from eager" in bad.detail and "window=" in bad.detail
    assert bad.counterexample.window is not None
    assert all(r.passed for n, r in results.items() if n != "equals_eager[local_block_causal]")


def test_a_wrong_gradient_is_caught(broken):
    results = by_name(run_attention_contracts("detached_values", registry=broken, max_examples=4))
    assert all(not results[f"equals_eager[{k}]"].passed for k in masks.MASK_KINDS)
    assert "grad v" in results["equals_eager[patch_causal]"].detail


def test_an_undeclared_kind_must_be_refused(broken):
    results = by_name(run_attention_contracts("unchecked", registry=broken, max_examples=3))
    assert results["equals_eager[local_block_causal]"].passed
    assert not results["refuses_undeclared"].passed and "accepted mask kind" in results["refuses_undeclared"].detail


def test_spec_and_backend_must_declare_the_same_kinds(broken):
    results = by_name(run_attention_contracts("misdeclared", registry=broken, max_examples=3))
    assert not results["mask_kinds"].passed and "declare them in one place" in results["mask_kinds"].detail


def test_unavailable_backend_must_refuse_with_unavailable_error(broken):
    [result] = run_attention_contracts("crashes", registry=broken)
    assert result.name == "available" and not result.passed
    assert "RuntimeError: CUDA driver missing instead of UnavailableError" in result.detail
    with pytest.raises(AssertionError, match="attention backend 'crashes' breaks 1 contract"):
        check_attention("crashes", registry=broken)


def test_undeclared_kinds_are_refused_by_builtin_checks():
    class OnlyLocal(EagerAttention):
        mask_kinds = frozenset({masks.LOCAL_BLOCK_CAUSAL})

    results = by_name(run_attention_contracts(OnlyLocal(), max_examples=2))
    assert results["refuses_undeclared"].passed and "with UnavailableError" in results["refuses_undeclared"].detail
    with pytest.raises(UnavailableError):
        OnlyLocal().prepare(masks.patch_causal(random_layout(0, 1, 4), False))
