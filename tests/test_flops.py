"""FLOP formulas agree with torch's FlopCounterMode (dense attention, as the eager kernel computes)."""

from __future__ import annotations

import pytest
import torch
from _tiny import tiny
from torch.utils.flop_counter import FlopCounterMode

import blt
from blt import flops
from blt.experiment import load_experiment
from blt.tokens import encode

TEXT = ("In the beginning God created the heaven and the earth. And the earth was without form, and void; "
        "def f(x):\n    return x * 2\n") * 2


def _batch(patcher, n=96, rows=2):
    ids = encode(TEXT)[: n + 1]
    toks = torch.stack([ids, ids.roll(7)])[:rows]
    toks[1, 0] = 1
    lengths = patcher.patch(toks[:, :n], include_next_token=True).lengths
    return toks[:, :n], lengths


def _counted(model, tokens, lengths, backward=False):
    with FlopCounterMode(display=False) as counter:
        out = model(tokens, lengths)
        if backward:
            out.float().sum().backward()
    per_module = counter.get_flop_counts()
    total = counter.get_total_flops()
    parts = {name.split(".", 1)[1]: sum(v.values()) for name, v in per_module.items() if name.count(".") == 1}
    return total, parts


CASES = {
    "cross_attention": {},
    "pooling_add": {"encoder": {"kind": "pooling", "layers": 2, "heads": 2, "ffn_dim": 64, "window": 16, "hash_sizes": [3]},
                    "decoder": {"kind": "add", "layers": 1, "heads": 2, "ffn_dim": 64, "window": 16}},
    "all_layers_gqa": {"encoder": {"kind": "cross_attention", "layers": 2, "heads": 4, "kv_heads": 2, "ffn_dim": 64,
                                   "window": 24, "k": 3, "cross_heads": 2, "cross_all_layers": True, "repool": True},
                       "model": {"d_local": 32, "d_global": 96, "global_layers": 1, "global_heads": 4, "global_kv_heads": 2}},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_blt_formula_matches_flop_counter(case, registry):
    data = tiny(attention={"kind": "eager"}, **CASES[case])
    config, reg = load_experiment(data, registry)
    torch.manual_seed(0)
    model = blt.build_model(config, registry=reg)
    tokens, lengths = _batch(reg.build_patcher(config.patcher))
    B, N = tokens.shape
    P = lengths.shape[1]
    total, parts = _counted(model, tokens, lengths)
    formula = model.flops(N, N / (P - 1), attention="dense")  # P = 1 + N / a
    assert sum(formula.values()) * B == pytest.approx(total, rel=0.05)
    # each component reports its own part, checked against the counter's per-module breakdown
    for name, module in (("encoder", model.encoder), ("decoder", model.decoder)):
        assert sum(module.flops(N, P, attention="dense").values()) * B == pytest.approx(parts[name], rel=0.05)
    assert formula["global"] * B == pytest.approx(parts["global_transformer"], rel=0.05)
    assert formula["head"] * B == pytest.approx(parts["lm_head"], rel=0.05)


def test_training_is_three_times_forward(registry):
    config, reg = load_experiment(tiny(attention={"kind": "eager"}), registry)
    model = blt.build_model(config, registry=reg)
    tokens, lengths = _batch(reg.build_patcher(config.patcher))
    forward, _ = _counted(model, tokens, lengths)
    both, _ = _counted(model, tokens, lengths, backward=True)
    assert both == pytest.approx(3 * forward, rel=0.05)


@pytest.mark.parametrize("kind", ["byte", "bpe_token"])
def test_token_baselines_match_flop_counter(kind, registry):
    data = tiny(patcher={"kind": "bpe"} if kind == "bpe_token" else {"kind": "byte"}, attention={"kind": "eager"},
                model={"kind": kind, "d_global": 64, "global_layers": 2, "global_heads": 4})
    config, reg = load_experiment(data, registry)
    patcher = reg.build_patcher(config.patcher)
    model = blt.build_model(config, registry=reg, patcher=patcher)
    tokens, lengths = _batch(patcher)
    targets = torch.cat([tokens[:, 1:], tokens[:, :1]], 1)
    row = torch.cat([tokens, targets[:, -1:]], 1)
    ids, _ = model.token_ids(row, lengths) if kind == "bpe_token" else (row, None)
    with FlopCounterMode(display=False) as counter:
        model(tokens, lengths, targets)
    T = ids.shape[1] - 1
    formula = model.flops(tokens.shape[1], tokens.shape[1] / T, attention="dense")
    assert sum(formula.values()) * tokens.shape[0] == pytest.approx(counter.get_total_flops(), rel=0.05)


def test_causal_pairs_count_the_mask():
    """The causal/windowed pair count equals the number of allowed entries of the mask."""
    for T, W in [(10, None), (10, 3), (7, 7), (5, 20)]:
        t = torch.arange(T)
        allowed = (t[None, :] <= t[:, None]) & ((t[:, None] - t[None, :]) < (W or T))
        assert flops.attention_pairs(T, W, "causal") == int(allowed.sum())


def test_report_per_byte_and_entropy_free_for_rule_patchers(registry):
    config, reg = load_experiment(tiny(), registry)
    patcher = reg.build_patcher(config.patcher)
    model = blt.build_model(config, registry=reg)
    small = flops.report(config, model, patcher, avg_patch_size=2.0)
    large = flops.report(config, model, patcher, avg_patch_size=8.0)
    assert small.forward_by_component["entropy_model"] == 0.0
    assert large.forward_by_component["global"] < small.forward_by_component["global"]  # bigger patches: fewer global steps
    assert large.forward_by_component["local_encoder"] == small.forward_by_component["local_encoder"]
    assert small.train_per_byte == pytest.approx(3 * small.forward_per_byte)
