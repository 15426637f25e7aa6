"""The contract suite: every builtin rule patcher passes it, and each kind of broken patcher is caught."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given

import blt.tokens
from blt.core.config import PatcherConfig
from blt.core.patching import Patches, as_batch, dynamic_prefix, finish
from blt.testing import check_patcher, run_contracts, strategies

pytest_plugins = ("pytester",)


def _plugin_args() -> tuple[str, ...]:
    """``-p blt.testing.pytest_plugin`` unless pytest already loads it through its pytest11 entry point."""
    import importlib.metadata as md
    import os

    if not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        if any(ep.value == "blt.testing.pytest_plugin" for ep in md.entry_points(group="pytest11")):
            return ()
    return ("-p", "blt.testing.pytest_plugin")


@pytest.mark.parametrize("target", ["strided", "byte", "space", "bpe", "entropy", "cnn_entropy",
                                    {"kind": "strided", "patch_size": 3}, {"kind": "space", "max_patch_length": 3}])
def test_builtin_patchers_pass_every_contract(registry, target):
    kind, config = (target, None) if isinstance(target, str) else (target["kind"], target)
    results = check_patcher(kind, registry=registry, config=config, max_examples=25)
    assert [r.name for r in results] == ["row_sums", "layout", "max_patch_length", "batch_consistency",
                                         "deterministic", "include_next_token", "incremental"]


class ToyConfig(PatcherConfig, tag="toy"):
    pass


class Toy:
    """A correct space-like rule (start after each byte < 'a'); subclasses break one contract each."""

    incremental = True

    def __init__(self, config: ToyConfig | None = None) -> None:
        self.config = config or ToyConfig()

    def starts(self, tokens_BN: torch.Tensor, n_out: int) -> torch.Tensor:
        starts = dynamic_prefix(tokens_BN.shape[0], n_out)
        if n_out > 2:
            starts[:, 2:] = tokens_BN[:, 1 : n_out - 1] < 4 + ord("a")
        return starts

    def patch(self, tokens, *, include_next_token=False, entropies=None) -> Patches:
        tokens_BN, squeeze = as_batch(tokens)
        starts = self.starts(tokens_BN, tokens_BN.shape[1] + int(include_next_token))
        return finish(starts, self.config.max_patch_length, squeeze)


class Lookahead(Toy):
    """Claims incremental, but a patch starts *before* a space: it looks at the next token."""

    def starts(self, tokens_BN, n_out):
        starts = dynamic_prefix(tokens_BN.shape[0], n_out)
        if n_out > 2:
            ahead = torch.nn.functional.pad(tokens_BN == 4 + ord(" "), (0, 1))
            starts[:, 2:] = ahead[:, 2:n_out]
        return starts


class TrainingLookahead(Toy):
    """Prefix-stable in each mode, but with include_next_token a patch also starts *before* a space."""

    def starts(self, tokens_BN, n_out):
        starts = super().starts(tokens_BN, n_out)
        if n_out > tokens_BN.shape[1] and n_out > 2:
            ahead = torch.nn.functional.pad(tokens_BN == 4 + ord(" "), (0, 1))
            starts[:, 2:] |= ahead[:, 2:n_out]
        return starts


class ModestToy(Toy):
    incremental = False  # wrong: the rule is prefix-stable


class DropsLastToken(Toy):
    def patch(self, tokens, *, include_next_token=False, entropies=None):
        tokens_BN, squeeze = as_batch(tokens)
        starts = self.starts(tokens_BN, max(0, tokens_BN.shape[1] - 1))
        return finish(starts, self.config.max_patch_length, squeeze)


class IgnoresMaxLength(Toy):
    def patch(self, tokens, *, include_next_token=False, entropies=None):
        tokens_BN, squeeze = as_batch(tokens)
        return finish(self.starts(tokens_BN, tokens_BN.shape[1] + int(include_next_token)), None, squeeze)


class BatchDependent(Toy):
    def starts(self, tokens_BN, n_out):
        starts = super().starts(tokens_BN, n_out)
        if tokens_BN.shape[0] > 1 and n_out > 2:
            starts[:, 2] = True  # only inside a batch
        return starts


class Noisy(Toy):
    def starts(self, tokens_BN, n_out):
        starts = super().starts(tokens_BN, n_out)
        return starts | (torch.rand(starts.shape) < 0.5)


class Mutates(Toy):
    def patch(self, tokens, *, include_next_token=False, entropies=None):
        out = super().patch(tokens, include_next_token=include_next_token)
        tokens.zero_()
        return out


def result(patcher, name):
    [only] = run_contracts(patcher, max_examples=30, only=[name])
    return only


def test_a_correct_toy_passes():
    check_patcher(Toy(), max_examples=20)


@pytest.mark.parametrize(("patcher", "contract", "message"), [
    (Lookahead(), "incremental", "declares incremental=True"),
    (ModestToy(), "incremental", "no counterexample"),
    (DropsLastToken(), "row_sums", "row sums"),
    (TrainingLookahead(), "include_next_token", "without include_next_token"),
    (IgnoresMaxLength(), "max_patch_length", "max_patch_length="),
    (BatchDependent(), "batch_consistency", "in batch"),
    (Noisy(), "deterministic", ""),
    (Mutates(), "deterministic", "modified its input"),
])
def test_broken_patchers_are_caught_with_a_counterexample(patcher, contract, message):
    r = result(patcher, contract)
    assert not r.passed and message in r.detail


def test_check_patcher_raises_with_the_shrunk_counterexample():
    with pytest.raises(AssertionError, match=r"contract\(s\):\n- row_sums: row sums \[\d+\], expected \d+ each"):
        check_patcher(DropsLastToken(), max_examples=20)


def test_lookahead_counterexample_is_shrunk():
    r = result(Lookahead(), "incremental")
    assert r.counterexample is not None and len(r.counterexample.tokens) <= 4
    assert blt.tokens.OFFSET + ord(" ") in r.counterexample.tokens.tolist()


@given(strategies.token_batches())
def test_batches_are_valid_ragged_token_tensors(batch):
    assert batch.dim() == 2 and batch.dtype == torch.long and batch.shape[0] >= 1
    assert batch.numel() == 0 or (int(batch.min()) >= 0 and int(batch.max()) < blt.tokens.VOCAB_SIZE)


@given(strategies.token_rows())
def test_rows_are_one_dimensional_valid_ids(row):
    assert row.dim() == 1 and (row.numel() == 0 or int(row.max()) < blt.tokens.VOCAB_SIZE)


def test_pytest_plugin_adds_one_item_per_kind_only_when_enabled(pytester, monkeypatch):
    monkeypatch.setenv("BLT_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    off = pytester.runpytest(*_plugin_args())
    off.assert_outcomes(passed=1)
    on = pytester.runpytest(*_plugin_args(), "--blt-contracts", "--blt-contracts-kinds", "patcher:byte,space",
                            "--blt-contracts-max-examples", "5", "-v")
    on.assert_outcomes(passed=3)
    on.stdout.fnmatch_lines(["*blt_contracts?patcher-byte? PASSED*", "*blt_contracts?patcher-space? PASSED*"])
    pytester.makeini("[pytest]\nblt_contracts = true\nblt_contracts_kinds = strided\nblt_contracts_max_examples = 5\n")
    pytester.runpytest(*_plugin_args()).assert_outcomes(passed=2)
    bad = pytester.runpytest(*_plugin_args(), "--blt-contracts", "--blt-contracts-kinds", "spcae")
    assert bad.ret != 0
    bad.stderr.fnmatch_lines(["*unknown kind*spcae*"])


def test_fixture_checks_a_patcher(pytester, monkeypatch):
    monkeypatch.setenv("BLT_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_fixture="def test_it(blt_check_patcher):\n    blt_check_patcher('byte', max_examples=5)\n")
    pytester.runpytest(*_plugin_args()).assert_outcomes(passed=1)
