"""Sampling (issue 15): top-k keeps exactly k candidates, top-p its nucleus, each row its own stream."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from blt.generate.sampling import Sampler, SamplingParams, filter_logits, row_seed

logit_lists = st.lists(st.integers(-3, 3).map(float), min_size=1, max_size=12)  # small ints: many ties


def test_top_k_breaks_ties_by_lowest_id():
    kept = filter_logits(torch.tensor([2.0, 2.0, 2.0, 0.0]), SamplingParams(temperature=1.0, top_k=1))
    assert torch.isfinite(kept).tolist() == [True, False, False, False]
    kept = filter_logits(torch.tensor([0.0, 2.0, 1.0, 2.0, 1.0]), SamplingParams(temperature=1.0, top_k=3))
    assert torch.isfinite(kept).tolist() == [False, True, True, True, False]


@given(logits=logit_lists, k=st.integers(1, 14), temperature=st.floats(0.1, 3.0))
def test_top_k_keeps_exactly_k_of_the_largest(logits, k, temperature):
    logits_V = torch.tensor(logits)
    kept_V = torch.isfinite(filter_logits(logits_V, SamplingParams(temperature=temperature, top_k=k)))
    assert int(kept_V.sum()) == min(k, len(logits))
    if not kept_V.all():  # every kept logit >= every dropped one; among equal ones the lower ids are kept
        kept_min, dropped_max = logits_V[kept_V].min(), logits_V[~kept_V].max()
        assert kept_min >= dropped_max
        ties = (logits_V == kept_min).nonzero().flatten().tolist()
        kept_ties = [i for i in ties if kept_V[i]]
        assert kept_ties == ties[: len(kept_ties)]


@given(logits=logit_lists, p=st.floats(0.01, 1.0))
def test_top_p_keeps_the_smallest_prefix_reaching_p(logits, p):
    logits_V = torch.tensor(logits)
    kept_V = torch.isfinite(filter_logits(logits_V, SamplingParams(temperature=1.0, top_p=p)))
    probs_V = torch.softmax(logits_V, -1)
    assert kept_V.any()
    assert float(probs_V[kept_V].sum()) >= min(p, 1.0) - 1e-6
    if not kept_V.all():
        assert probs_V[kept_V].min() >= probs_V[~kept_V].max()


def test_rows_draw_from_their_own_streams():
    params = SamplingParams(temperature=1.0, seed=5)
    logits_V = torch.zeros(260)
    draws = [[Sampler(params, 4).choose(row, logits_V) for row in range(4)] for _ in range(2)]
    assert draws[0] == draws[1]  # reproducible
    one = Sampler(params, 4)
    rows = [[one.choose(row, logits_V) for _ in range(8)] for row in range(4)]
    assert len({tuple(r) for r in rows}) == 4  # four rows, four different streams
    shifted = Sampler(params, 2, first_row=2)  # row 2 of a chunk that starts at 2 is row 2 of the batch
    assert [shifted.choose(0, logits_V) for _ in range(8)] == rows[2]
    assert len({row_seed(s, r) for s in range(20) for r in range(20)}) == 400


@given(k=st.integers(1, 4), seed=st.integers(0, 2**31))
def test_top_k_sampling_only_draws_kept_ids(k, seed):
    logits_V = torch.tensor([1.0, 3.0, 3.0, 0.0, 3.0, -1.0])
    sampler = Sampler(SamplingParams(temperature=2.0, top_k=k, seed=seed), 1)
    allowed = {1, 2, 4, 0}
    allowed = sorted(allowed, key=lambda i: (-logits_V[i], i))[:k]
    assert all(sampler.choose(0, logits_V) in allowed for _ in range(20))
