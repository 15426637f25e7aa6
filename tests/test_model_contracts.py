"""The model contract suite: the builtin models pass, causal with every registered patcher (BPE on
its delimited stream included); a patcher that looks ahead, BPE on raw rows, wrong FLOPs and
dead parameters are each caught by the contract that names them."""

from __future__ import annotations

import pytest
import torch

import blt
from blt.core.config import PatcherConfig
from blt.core.patching import as_batch, dynamic_prefix, finish
from blt.core.specs import ModelSpec, PatcherSpec
from blt.model.config import BltConfig
from blt.plugins.patchers.bpe import BpeConfig, BpePatcher
from blt.testing import check_model, run_model_contracts
from blt.tokens import OFFSET


def by_name(results):
    return {r.name: r for r in results}


def test_blt_and_byte_models_are_causal_with_every_registered_patcher(registry):
    for kind in ("blt", "byte"):
        results = by_name(check_model(kind, registry=registry, max_examples=4))
        assert {f"causality[{p}]" for p in registry.patchers} <= set(results)
        assert all(r.status == "pass" for r in results.values()), results
        assert {"loss", "flops", "gradients"} <= set(results)


def test_token_level_model_reports_causality_not_applicable(registry):
    results = by_name(check_model("bpe_token", registry=registry, max_examples=3))
    assert results["causality"].skipped and results["causality"].detail.startswith("not applicable: ")
    assert "byte_causal=False" in results["causality"].detail
    assert results["flops"].passed and "bpe patcher" in results["flops"].detail  # the one patcher it takes


# --- broken pieces, registered as a third party would ---------------------------------------------

class PeekConfig(PatcherConfig, tag="peek"):
    pass


class PeekPatcher:
    """Space-like, but a patch also starts *at* a space: position p's start reads token p."""

    incremental = True

    def __init__(self, config):
        self.config = config

    def patch(self, tokens, *, include_next_token=False, entropies=None):
        tokens_BN, squeeze = as_batch(tokens)
        B, N = tokens_BN.shape
        starts = dynamic_prefix(B, N + int(include_next_token), tokens_BN.device)
        if N > 2:
            starts[:, 2:N] |= tokens_BN[:, 2:] == OFFSET + ord(" ")
        return finish(starts, self.config.max_patch_length, squeeze)


class RawBpeConfig(BpeConfig, tag="raw_bpe"):
    pass


class RawBpePatcher(BpePatcher):
    """BPE on raw rows: the model is fed undelimited rows, whose boundaries come from the future."""

    prepare_document = None
    patch_prepared = None


class SloppyConfig(BltConfig, tag="sloppy"):
    pass


def build_sloppy(experiment, registry, *, patcher=None, device=None, training=False):
    """A BLT with an unused parameter whose flops() forgets the head."""
    from blt.plugins.models.blt import build

    model = build(experiment, registry, patcher=patcher, device=device, training=training)
    model.unused = torch.nn.Parameter(torch.zeros(3))
    full = model.flops
    model.flops = lambda n, a, attention="causal": {k: v for k, v in full(n, a, attention).items() if k != "head"}
    return model


class BrokenPieces:
    @blt.hookimpl
    def blt_register_patchers(self):
        return [PatcherSpec(name="peek", config_type=PeekConfig, build=PeekPatcher, incremental=True),
                PatcherSpec(name="raw_bpe", config_type=RawBpeConfig, build=RawBpePatcher, incremental=False)]

    @blt.hookimpl
    def blt_register_models(self):
        return [ModelSpec(name="sloppy", config_type=SloppyConfig, build=build_sloppy)]


@pytest.fixture(scope="module")
def broken():
    return blt.make_registry(autoload=False, plugins=[BrokenPieces()])


def test_non_causal_patchers_fail_causality_by_name(broken):
    with pytest.raises(AssertionError, match=r"model 'blt' breaks 2 contract\(s\)") as info:
        check_model("blt", registry=broken, max_examples=8, only=["causality"])
    for kind in ("peek", "raw_bpe"):  # and every builtin patcher passes
        assert f"- causality[{kind}]: not causal with the {kind} patcher: logits at positions <= t" in str(info.value)


def test_the_byte_baseline_ignores_patches_so_even_a_peeking_patcher_is_fine(broken):
    results = by_name(run_model_contracts("byte", registry=broken, max_examples=5, only=["causality"]))
    assert results["causality[peek]"].passed and results["causality[raw_bpe]"].passed


def test_wrong_flops_and_a_dead_parameter_are_named(broken):
    results = by_name(run_model_contracts("sloppy", registry=broken, max_examples=2, only=["loss", "flops", "gradients"]))
    assert results["loss"].passed
    assert not results["flops"].passed and "FlopCounterMode counts" in results["flops"].detail
    assert not results["gradients"].passed and results["gradients"].detail == "no gradient for unused"


def test_patcher_settings_reach_the_suite(registry, entropy_files):
    results = by_name(run_model_contracts("blt", registry=registry, max_examples=3, only=["causality"], patchers={
        "entropy": {"model_path": str(entropy_files["entropy"]), "threshold": 1.0},
        "cnn_entropy": {"model_path": str(entropy_files["cnn_entropy"]), "threshold": 1.0}}))
    assert results["causality[entropy]"].passed and results["causality[cnn_entropy]"].passed
    missing = by_name(run_model_contracts("blt", registry=registry, max_examples=2, only=["causality"],
                                          patchers={"entropy": {"model_path": "/no/such.safetensors", "threshold": 1.0}}))
    assert missing["causality[entropy]"].skipped and "cannot be built here" in missing["causality[entropy]"].detail
