"""Ablation statistics: the t quantile against published values, intervals and paired differences
against hand computation, the frontier and its slope on synthetic points, and the summary of
synthetic run records (seeds, lr sweep, grid) without training anything."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blt.ablation.results import results_markdown, summarize
from blt.ablation.stats import frontier, loglog_slope, mean_ci, paired_difference, t_quantile

# Two-sided 95% Student-t critical values (0.975 quantiles), as printed in standard tables.
T_975 = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 5: 2.5706, 9: 2.2622, 10: 2.2281, 20: 2.0860, 30: 2.0423, 120: 1.9799}


@pytest.mark.parametrize("df,expected", sorted(T_975.items()))
def test_t_quantile_matches_the_table(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=6e-5)


def test_t_quantile_closed_forms():
    # df = 1 is the Cauchy distribution: tan(pi (p - 1/2)); df = 2: (2p - 1) / sqrt(2 p (1 - p))
    for p in (0.6, 0.9, 0.975, 0.995):
        assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-6)
        assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-6)
    assert t_quantile(0.5, 7) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        t_quantile(0.975, 0)


def test_mean_ci_by_hand():
    values = [2.272, 2.182, 2.313]
    mean = sum(values) / 3
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
    half = 4.302653 * sd / math.sqrt(3)
    s = mean_ci(values)
    assert s["mean"] == pytest.approx(mean) and s["sd"] == pytest.approx(sd) and s["n"] == 3
    assert s["half_width"] == pytest.approx(half, rel=1e-6)
    assert s["ci95"] == pytest.approx([mean - half, mean + half], rel=1e-6)
    one = mean_ci([2.5])
    assert one == {"mean": 2.5, "ci95": None, "half_width": None, "n": 1, "sd": None}


def test_paired_difference_by_hand():
    # the three seeds: space - strided4 = -0.073, -0.031, -0.055
    space = {0: 2.272, 1: 2.182, 2: 2.313}
    strided = {0: 2.345, 1: 2.213, 2: 2.368}
    d = paired_difference(space, strided)
    diffs = [-0.073, -0.031, -0.055]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in diffs) / 2)
    assert d["mean"] == pytest.approx(mean) and d["n"] == 3
    assert d["half_width"] == pytest.approx(4.302653 * sd / math.sqrt(3), rel=1e-6)
    assert d["ci95"][1] < 0  # consistent in every seed: the interval excludes zero
    assert d["per_seed"] == pytest.approx({0: -0.073, 1: -0.031, 2: -0.055})
    assert paired_difference({0: 1.0, 5: 2.0}, {5: 1.5, 6: 0.0})["per_seed"] == {5: 0.5}  # shared seeds only
    assert paired_difference({0: 1.0}, {1: 1.0}) is None


def test_frontier_is_the_best_size_per_budget():
    points = [(1e9, 0.98e9, 3.0, "small"), (1e9, 0.99e9, 3.2, "big"),
              (1e10, 0.97e10, 2.6, "small"), (1e10, 0.99e10, 2.4, "big"),
              (1e11, 0.99e11, 2.3, "small"), (1e11, 0.98e11, 2.0, "big")]
    assert frontier(points) == [(0.98e9, 3.0, "small"), (0.99e10, 2.4, "big"), (0.98e11, 2.0, "big")]
    assert frontier(list(reversed(points))) == frontier(points)


@given(st.floats(-0.5, 0.5), st.floats(0.5, 5.0), st.lists(st.floats(1e6, 1e15), min_size=2, max_size=6, unique=True))
def test_loglog_slope_recovers_a_power_law(exponent, scale, flops):
    if max(flops) / min(flops) < 1.01:
        return
    fit = loglog_slope([(f, scale * f ** exponent) for f in flops])
    assert fit["slope"] == pytest.approx(exponent, abs=1e-9)
    assert fit["intercept"] == pytest.approx(math.log(scale), abs=1e-6)


def test_loglog_slope_needs_two_budgets():
    assert loglog_slope([(1e9, 2.0)]) is None
    assert loglog_slope([(1e9, 2.0), (1e9, 1.9)]) is None
    # least squares on three points that are not on a line: slope of the fitted line
    pts = [(math.e ** 0, math.e ** 1.0), (math.e ** 1, math.e ** 0.8), (math.e ** 2, math.e ** 0.9)]
    assert loglog_slope(pts)["slope"] == pytest.approx(-0.05)


class _Ablation:
    def __init__(self, variants, seeds, sizes=(None,), budgets=(None,), lrs=(None,), reference=None):
        self.variants, self.seeds, self.sizes, self.budgets, self.lrs = list(variants), list(seeds), list(sizes), list(budgets), list(lrs)
        self.reference = reference or self.variants[0]


def _rec(variant, seed, bpb, size=None, budget=None, lr=None, flops=1e9):
    return {"variant": variant, "seed": seed, "size": size, "budget": budget, "lr": lr, "dir": f"runs/{variant}/seed{seed}",
            "fingerprint": "f" * 16, "bpb": bpb, "train_flops": flops, "inference_flops_per_byte": 1e5, "avg_patch_size": 4.0,
            "params": 1000, "bytes_per_s": 10.0, "wall_s": 1.0, "steps": 10, "train_flops_per_byte": 3e5, "configured_lr": 3e-3}


def test_summary_of_seeds_and_the_lr_sweep():
    ab = _Ablation(["ref", "other"], [0, 1, 2], lrs=[1e-3, 3e-3])
    bpb = {("ref", 0, 1e-3): 2.5, ("ref", 0, 3e-3): 2.3, ("ref", 1, 1e-3): 2.2, ("ref", 1, 3e-3): 2.4,
           ("ref", 2, 1e-3): 2.6, ("ref", 2, 3e-3): 2.35,
           ("other", 0, 1e-3): 2.1, ("other", 0, 3e-3): 2.9, ("other", 1, 1e-3): 2.0, ("other", 1, 3e-3): 2.05,
           ("other", 2, 1e-3): 2.4, ("other", 2, 3e-3): 2.2}
    records = [_rec(v, s, b, lr=lr) for (v, s, lr), b in bpb.items()]
    ref, other = summarize(ab, records)
    assert [(s["seed"], s["lr"], s["bpb"]) for s in ref["seeds"]] == [(0, 3e-3, 2.3), (1, 1e-3, 2.2), (2, 3e-3, 2.35)]
    assert [(s["seed"], s["lr"], s["bpb"]) for s in other["seeds"]] == [(0, 1e-3, 2.1), (1, 1e-3, 2.0), (2, 3e-3, 2.2)]
    assert [(t["lr"], t["bpb"]) for t in ref["seeds"][0]["tried"]] == [(1e-3, 2.5), (3e-3, 2.3)]
    assert ref["bpb"] == pytest.approx((2.3 + 2.2 + 2.35) / 3) and ref["n_seeds"] == 3
    assert ref["bpb_ci95"] == pytest.approx(mean_ci([2.3, 2.2, 2.35])["ci95"])
    assert "paired_diff" not in ref
    pd = other["paired_diff"]
    assert pd["reference"] == "ref" and pd["mean"] == pytest.approx(((2.1 - 2.3) + (2.0 - 2.2) + (2.2 - 2.35)) / 3)
    assert pd["ci95"] == pytest.approx(mean_ci([2.1 - 2.3, 2.0 - 2.2, 2.2 - 2.35])["ci95"])
    md = results_markdown(ab, [ref, other])
    assert "| other | 2.1000 ± " in md and "reference" in md and "0.001, 0.001, 0.003" in md


def test_summary_of_a_partial_ablation_and_one_seed():
    ab = _Ablation(["ref", "other"], [0, 1])
    only = summarize(ab, [_rec("other", 0, 2.0)])  # the reference has not finished yet
    assert [e["name"] for e in only] == ["other"] and only[0]["paired_diff"] is None
    assert only[0]["bpb_ci95"] is None and only[0]["n_seeds"] == 1
    assert "2.0000 (n=1)" in results_markdown(ab, only)


def test_summary_of_a_grid_has_cells_frontier_and_slope():
    ab = _Ablation(["v"], [0], sizes=["small", "big"], budgets=[1e9, 1e10])
    bpb = {("small", 1e9): 3.0, ("big", 1e9): 3.1, ("small", 1e10): 2.7, ("big", 1e10): 2.5}
    records = [_rec("v", 0, b, size=s, budget=f, flops=f * 0.99) for (s, f), b in bpb.items()]
    (entry,) = summarize(ab, records)
    assert len(entry["cells"]) == 4
    assert [(p["size"], p["bpb"]) for p in entry["frontier"]["points"]] == [("small", 3.0), ("big", 2.5)]
    assert entry["frontier"]["slope"] == pytest.approx(math.log(2.5 / 3.0) / math.log(10))
    assert entry["size"] == "big" and entry["budget"] == 1e10 and entry["bpb"] == 2.5  # headline: best at the top budget
    assert "Compute-optimal frontier" in results_markdown(ab, [entry])
