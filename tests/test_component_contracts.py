"""The encoder / decoder contract suites: every builtin passes, and each kind of broken component
is caught by the contract that names its fault (a changed forward is never silently wrong)."""

from __future__ import annotations

import pytest
import torch

import blt
from blt.core.errors import ConfigError
from blt.core.specs import DecoderSpec, EncoderSpec
from blt.attention.masks import LOCAL_BLOCK_CAUSAL, PATCH_TO_BYTE, patch_to_byte
from blt.plugins.decoders.add import AddDecoder, AddDecoderConfig
from blt.plugins.encoders.pooling import PoolingEncoder, PoolingEncoderConfig
from blt.testing import check_decoder, check_encoder, run_encoder_contracts, run_family
from blt.testing.component_contracts import CONTRACT_NAMES


@pytest.mark.parametrize(("role", "kind"), [("encoder", "cross_attention"), ("encoder", "pooling"),
                                            ("decoder", "cross_attention"), ("decoder", "add")])
def test_builtins_pass_every_contract(registry, role, kind):
    check = check_encoder if role == "encoder" else check_decoder
    results = check(kind, registry=registry, max_examples=5)
    assert tuple(r.name for r in results) == CONTRACT_NAMES
    assert not any(r.skipped for r in results)
    assert "equal cache=False's at all" in next(r.detail for r in results if r.name == "cached_step")


def test_builtins_pass_with_non_default_configs(registry):
    check_encoder("cross_attention", registry=registry, max_examples=4,
                  config={"layers": 2, "cross_all_layers": True, "cross_window": 2, "k": 3, "heads": 2})
    check_decoder("cross_attention", registry=registry, max_examples=4,
                  config={"layers": 2, "cross_all_layers": False, "cross_window": 2, "kv_heads": 2})


# --- broken encoders: pooling subclasses, each with one fault ---------------------------------------

class Leaky(PoolingEncoder):
    """Mixes the next byte's state into each byte: not causal."""

    def forward(self, tokens_BN, layout, attends):
        h_BND, patches = super().forward(tokens_BN, layout, attends)
        return h_BND + 0.5 * torch.roll(h_BND, -1, dims=1), patches


class BatchMixing(PoolingEncoder):
    def forward(self, tokens_BN, layout, attends):
        h_BND, patches = super().forward(tokens_BN, layout, attends)
        return h_BND + h_BND.mean(0, keepdim=True), patches


class Noisy(PoolingEncoder):
    def forward(self, tokens_BN, layout, attends):
        h_BND, patches = super().forward(tokens_BN, layout, attends)
        return h_BND + 1e-2 * torch.randn_like(h_BND), patches


class Scaled(PoolingEncoder):
    """A causal change of forward, without a step of its own: cached generation must refuse it."""

    def forward(self, tokens_BN, layout, attends):
        h_BND, patches = super().forward(tokens_BN, layout, attends)
        return 2 * h_BND, 2 * patches


class ScaledWithStaleStep(Scaled):
    """Claims a step of its own, but it is the parent's maths: the cached step disagrees."""

    def incremental_step(self, batch, total, backend, like):
        return super().incremental_step(batch, total, backend, like)


class HalfFlops(PoolingEncoder):
    def flops(self, n_bytes, n_patches, attention="causal"):
        return {k: v / 2 for k, v in super().flops(n_bytes, n_patches, attention).items()}


class DeadWeight(PoolingEncoder):
    def __init__(self, config, dims):
        super().__init__(config, dims)
        self.unused = torch.nn.Linear(dims.d_local, dims.d_local)


class ExtraMask(PoolingEncoder):
    """Describes a mask kind it does not declare."""

    def describe_masks(self, layout):
        return {**super().describe_masks(layout), "extra": patch_to_byte(layout, 1)}


BROKEN_ENCODERS = {"leaky": Leaky, "batch_mixing": BatchMixing, "noisy": Noisy, "scaled": Scaled,
                   "stale_step": ScaledWithStaleStep, "half_flops": HalfFlops, "dead_weight": DeadWeight,
                   "extra_mask": ExtraMask}


class LeakyDecoder(AddDecoder):
    def forward(self, bytes_BND, patches_BPG, layout, attends):
        h_BND = super().forward(bytes_BND, patches_BPG, layout, attends)
        return h_BND + torch.roll(h_BND, -2, dims=1)


def _encoder_spec(name, cls):
    config = type(f"{cls.__name__}Config", (PoolingEncoderConfig,), {}, tag=name)
    return EncoderSpec(name=name, config_type=config, build=cls)


class BrokenParts:
    @blt.hookimpl
    def blt_register_encoders(self):
        return [_encoder_spec(name, cls) for name, cls in BROKEN_ENCODERS.items()]

    @blt.hookimpl
    def blt_register_decoders(self):
        config = type("LeakyDecoderConfig", (AddDecoderConfig,), {}, tag="leaky_add")
        return [DecoderSpec(name="leaky_add", config_type=config, build=LeakyDecoder)]


@pytest.fixture(scope="module")
def broken():
    return blt.make_registry(autoload=False, plugins=[BrokenParts()])


def by_name(results):
    return {r.name: r for r in results}


@pytest.mark.parametrize(("kind", "contract", "needle"), [
    ("leaky", "causality", "positions <= t"),
    ("batch_mixing", "batch_consistency", "alone vs in the batch"),
    ("noisy", "deterministic", ""),
    ("stale_step", "cached_step", "the cached step disagrees with the full forward"),
    ("half_flops", "flops", "FlopCounterMode counts"),
    ("dead_weight", "gradients", "no gradient for encoder.unused.weight, encoder.unused.bias"),
    ("extra_mask", "mask_kinds", "undeclared kinds {'extra': 'patch_to_byte'}"),
])
def test_each_fault_fails_the_contract_that_names_it(broken, kind, contract, needle):
    results = by_name(run_encoder_contracts(kind, registry=broken, max_examples=6, only=sorted({contract, "mask_kinds"})))
    assert not results[contract].passed and needle in results[contract].detail, results[contract]
    assert results["mask_kinds"].passed or contract == "mask_kinds"


def test_a_causality_counterexample_is_shrunk(broken):
    [result] = run_encoder_contracts("leaky", registry=broken, max_examples=10, only=["causality"])
    edit, _ = result.counterexample
    assert len(edit.ids) <= 3 and "edited after t=" in result.detail


def test_changed_forward_without_a_step_fails_the_cached_step_contract(broken):
    """Never silently wrong: the inherited step is named as the broken contract (and cached
    generation refuses it, while --no-cache works)."""
    result = by_name(run_encoder_contracts("scaled", registry=broken, max_examples=3))["cached_step"]
    assert not result.passed and "inherits incremental_step() from PoolingEncoder" in result.detail


def test_decoder_suite_catches_a_leak(broken):
    with pytest.raises(AssertionError, match=r"decoder 'leaky_add' breaks 1 contract\(s\):\n- causality: "):
        check_decoder("leaky_add", registry=broken, max_examples=6, only=["causality", "gradients", "flops"])


def test_family_dispatch_needs_the_family_for_a_kind_in_two_families(registry):
    with pytest.raises(ConfigError, match=r"'cross_attention' is registered as an encoder and a decoder; name the family "
                                          r"with --family encoder\|decoder"):
        run_family(None, "cross_attention", registry=registry)
    results = run_family(None, "pooling", registry=registry, max_examples=3)
    assert tuple(r.name for r in results) == CONTRACT_NAMES and all(r.passed for r in results)


def test_bad_config_propagates_as_a_config_error(registry):
    with pytest.raises(ConfigError, match=r"\$\.encoder\.heads"):
        run_encoder_contracts("pooling", registry=registry, config={"heads": 3})


def test_declared_masks_come_from_the_class(registry):
    assert registry.encoders["pooling"].mask_kinds == {LOCAL_BLOCK_CAUSAL}
    assert registry.decoders["cross_attention"].mask_kinds == {LOCAL_BLOCK_CAUSAL, PATCH_TO_BYTE}


# --- dispatch by family: blt check-plugin and pytest --blt-contracts ----------------------------

pytest_plugins = ("pytester",)


def test_check_plugin_runs_the_family_suite(capsys):
    from blt.cli.main import main

    assert main(["check-plugin", "--family", "encoder", "pooling", "--max-examples", "3"]) == 0
    out = capsys.readouterr().out
    assert "encoder contracts for 'pooling'" in out and "8 passed, 0 failed" in out and "cached_step" in out and "speculative_step" in out
    assert main(["check-plugin", "flash"]) == 0 or torch.cuda.is_available()
    assert "skipped" in capsys.readouterr().out or torch.cuda.is_available()


def test_check_plugin_exits_1_naming_the_failing_contract(broken, capsys, monkeypatch):
    from blt.cli.main import main

    monkeypatch.setattr("blt.core.registry.registry_for", lambda data: broken)
    assert main(["check-plugin", "leaky", "--max-examples", "4"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "failed: causality" in out


def _plugin_args() -> tuple[str, ...]:
    import importlib.metadata as md
    import os

    if not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        if any(ep.value == "blt.testing.pytest_plugin" for ep in md.entry_points(group="pytest11")):
            return ()
    return ("-p", "blt.testing.pytest_plugin")


def test_pytest_plugin_adds_one_item_per_family_and_kind(pytester, monkeypatch):
    monkeypatch.setenv("BLT_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    run = pytester.runpytest(*_plugin_args(), "--blt-contracts", "--blt-contracts-families", "encoder,attention,model",
                             "--blt-contracts-kinds", "encoder:pooling,flash,bpe_token", "--blt-contracts-max-examples", "2",
                             "-v", "-rs")
    flash_skips = registry_flash_skips()
    run.assert_outcomes(passed=3 + (not flash_skips), skipped=int(flash_skips))
    run.stdout.fnmatch_lines(["*blt_contracts?encoder-pooling? PASSED*", "*blt_contracts?model-bpe_token? PASSED*"])
    if flash_skips:
        run.stdout.fnmatch_lines(["*attention flash: every contract skipped: unavailable:*"])
    both = pytester.runpytest(*_plugin_args(), "--blt-contracts", "--blt-contracts-families", "encoder,decoder",
                              "--blt-contracts-kinds", "cross_attention", "--collect-only", "-q")
    both.stdout.fnmatch_lines(["*blt_contracts?encoder-cross_attention?*", "*blt_contracts?decoder-cross_attention?*"])
    bad = pytester.runpytest(*_plugin_args(), "--blt-contracts", "--blt-contracts-families", "patchers")
    assert bad.ret != 0
    bad.stderr.fnmatch_lines(["*unknown family ?'patchers'?; families: patcher, encoder*"])


def registry_flash_skips() -> bool:
    return blt.make_registry(autoload=False).attention["flash"].is_available() is not None


def test_plugin_fixture_checks_any_family(pytester, monkeypatch):
    monkeypatch.setenv("BLT_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_fixture="def test_it(blt_check_plugin):\n    blt_check_plugin('attention', 'sdpa', max_examples=2)\n"
                                     "    blt_check_plugin(None, 'add', max_examples=2)\n")
    pytester.runpytest(*_plugin_args()).assert_outcomes(passed=1)


def test_speculative_contract_fails_when_a_rewind_misses_state(monkeypatch):
    """An encoder step whose restore() leaves part of its state as drafting left it (here: the
    byte-state history) gives other bytes under speculative decoding; the contract says so."""
    from blt.generate.encoder_step import EncoderStep
    from blt.plugins.encoders.pooling import PoolingEncoderStep

    def leaky_restore(self, mark):
        drafted = self.history.snapshot()
        EncoderStep.restore(self, mark)
        self.history.restore(drafted)  # the bug: rejected drafts' byte states stay

    [ok] = run_encoder_contracts("pooling", only=["speculative_step"])
    assert ok.passed, ok.detail
    monkeypatch.setattr(PoolingEncoderStep, "restore", leaky_restore)
    [result] = run_encoder_contracts("pooling", only=["speculative_step"])
    assert not result.passed and ("must cover all of its state" in result.detail or "disagree" in result.detail), result.detail
