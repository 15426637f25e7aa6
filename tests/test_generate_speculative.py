"""Exact self-speculative decoding (issue 15): same greedy bytes as plain cached generation, the
speculative sampling rule keeps the distribution, rejected drafts leave no trace, refusals are clear."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from blt.core.errors import InputError, UnavailableError
from blt.generate import generate_detailed
from blt.generate.global_step import GlobalStep
from blt.generate.speculative import accept_or_resample
from _generate_helpers import COMBOS, as_ids, draw_case, get_model, get_patcher

pytestmark = pytest.mark.usefixtures("one_thread")


def assert_same_greedy(plain, spec):
    assert spec.new_tokens == plain.new_tokens
    assert spec.outputs == plain.outputs
    if len(spec.patches) == 1:  # (a finished row of a plain batch steps on until its batch is done)
        assert spec.patches == plain.patches
    for a, b in zip(spec.logits, plain.logits):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@settings(max_examples=40)
@given(data=st.data())
def test_greedy_speculative_equals_plain_cached(registry, entropy_files, data):
    """Every patcher (entropy models included) and encoder/decoder pair, prompts holding EOS, any K."""
    model, patcher, ids = draw_case(data, registry, entropy_files, max_bytes=12, max_rows=2)
    kw = dict(max_new_bytes=data.draw(st.integers(1, 24), label="max_new_bytes"), keep_logits=True,
              stop_at_eos=data.draw(st.booleans(), label="stop_at_eos"))
    spec = generate_detailed(model, patcher, ids, speculative=data.draw(st.integers(1, 9), label="K"), **kw)
    assert_same_greedy(generate_detailed(model, patcher, ids, **kw), spec)
    for row in spec.speculation:
        assert 0 <= row["accepted"] <= row["drafted"]
        assert row["tokens"] == len(spec.new_tokens[spec.speculation.index(row)])


@pytest.mark.parametrize("encoder, decoder", COMBOS)
@pytest.mark.parametrize("patcher_name", ["space_max2", "entropy", "byte"])
def test_long_speculative_run_past_every_window(registry, entropy_files, encoder, decoder, patcher_name):
    """60 bytes: the local rings (5, 7 slots) wrap many times under drafts and rewinds."""
    model, patcher = get_model(registry, encoder, decoder), get_patcher(registry, patcher_name, entropy_files)
    ids = [as_ids(list(b"ab cd. ab"))]
    kw = dict(max_new_bytes=60, keep_logits=True, stop_at_eos=False)
    spec = generate_detailed(model, patcher, ids, speculative=6, **kw)
    assert_same_greedy(generate_detailed(model, patcher, ids, **kw), spec)
    stats = spec.speculation[0]
    assert stats["rounds"] > 5 and stats["drafted"] > stats["accepted"]  # rejected drafts were rewound


def test_global_calls_are_counted(registry, entropy_files, monkeypatch):
    """``global_calls`` is the number of global-stack calls made after the prompt (the prompt's are
    made in blocks, as plain generation makes them); with the byte patcher (a patch per byte)
    accepted drafts make it smaller than the plain count (one call per byte)."""
    from blt.generate import speculative

    calls, in_prefill = [], []
    for name in ("close", "close_row"):
        original = getattr(GlobalStep, name)
        monkeypatch.setattr(GlobalStep, name, lambda self, *a, _o=original, **k: calls.append(1) or _o(self, *a, **k))
    real_prefill = speculative.prefill

    def counted_prefill(*args):
        before = len(calls)
        out = real_prefill(*args)
        in_prefill.append(len(calls) - before)
        return out

    monkeypatch.setattr(speculative, "prefill", counted_prefill)
    model, patcher = get_model(registry, "cross_attention", "cross_attention"), get_patcher(registry, "byte", entropy_files)
    prompt = as_ids(list(b"ab cd"))
    spec = generate_detailed(model, patcher, [prompt], max_new_bytes=30, stop_at_eos=False, speculative=4)
    stats = spec.speculation[0]
    assert in_prefill == [1]  # the prompt's first 5 positions: one block, one call
    assert stats["global_calls"] == len(calls) - 1 == stats["rounds"]
    assert stats["prompt_patches"] == len(prompt)  # the byte patcher: a patch per prompt position
    assert stats["accepted"] > 0 and stats["global_calls"] < spec.patches[0] - stats["prompt_patches"]


def test_sampling_rule_keeps_the_target_distribution():
    """Drafts from q, the rule's output is distributed as p (40 000 seeded draws: deterministic)."""
    p = torch.tensor([0.5, 0.3, 0.15, 0.05, 0.0])
    q = torch.tensor([0.1, 0.2, 0.3, 0.2, 0.2])
    rng = torch.Generator().manual_seed(0)
    counts = torch.zeros(5)
    n, kept = 40_000, 0
    for _ in range(n):
        draft = int(torch.multinomial(q, 1, generator=rng))
        token, accepted = accept_or_resample(p, q, draft, rng)
        counts[token] += 1
        kept += accepted
    torch.testing.assert_close(counts / n, p, atol=0.01, rtol=0)
    assert abs(kept / n - float(torch.minimum(p, q).sum())) < 0.01  # acceptance = sum min(p, q)
    assert counts[4] == 0  # never a token p excludes


def test_sampled_speculative_first_byte_follows_the_model(registry, entropy_files):
    """A prompt ending at a patch boundary: the first byte is drafted with stale global states and
    then accepted or resampled; its frequencies over 600 seeded rows match the exact softmax."""
    model, patcher = get_model(registry, "cross_attention", "cross_attention"), get_patcher(registry, "byte", entropy_files)
    prompt = as_ids(list(b"ab c"))
    from blt.generate.sampling import SamplingParams, filter_logits

    exact = generate_detailed(model, patcher, [prompt], max_new_bytes=1, keep_logits=True).logits[0][0]
    params = SamplingParams(temperature=0.3, top_k=6)
    p = torch.softmax(filter_logits(exact, params).double(), -1)
    n = 600
    spec = generate_detailed(model, patcher, [prompt] * n, max_new_bytes=1, temperature=params.temperature,
                             top_k=params.top_k, seed=3, speculative=3)
    counts = torch.bincount(torch.tensor([t[0] for t in spec.new_tokens]), minlength=260).double()
    assert 0.5 * (counts / n - p).abs().sum() < 0.1  # total variation: 0.035 here, as plain sampling gets
    assert sum(s["drafted"] - s["accepted"] for s in spec.speculation) > 0  # rejections happened and were resampled


def test_sampled_speculative_is_seeded(registry, entropy_files):
    model, patcher = get_model(registry, "pooling", "add"), get_patcher(registry, "space", entropy_files)
    kw = dict(max_new_bytes=20, temperature=1.0, top_k=5, seed=11, speculative=4, stop_at_eos=False)
    a = generate_detailed(model, patcher, [as_ids(list(b"ab")), as_ids(list(b"ab"))], **kw)
    b = generate_detailed(model, patcher, [as_ids(list(b"ab")), as_ids(list(b"ab"))], **kw)
    assert a.new_tokens == b.new_tokens
    assert a.new_tokens[0] != a.new_tokens[1]  # each row its own stream


def test_bad_speculative_arguments(registry, entropy_files):
    model, patcher = get_model(registry, "cross_attention", "cross_attention"), get_patcher(registry, "space", entropy_files)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(InputError, match="speculative must be an integer >= 1"):
            generate_detailed(model, patcher, ["a"], speculative=bad)
    with pytest.raises(InputError, match="drop --no-cache"):
        generate_detailed(model, patcher, ["a"], speculative=2, cache=False)


def test_models_without_a_global_step_to_defer_are_refused(registry, entropy_files, monkeypatch):
    """A model whose cached step has no patch boundary to draft past (a plugin's own stepper) is
    refused in one line; one with no cached step at all says so."""
    import blt

    baseline = blt.build_model({"patcher": {"kind": "byte"}, "model": {"kind": "byte", "d_global": 16, "global_layers": 1,
                                                                      "global_heads": 2}}, registry=registry).eval()
    patcher = get_patcher(registry, "byte", entropy_files)
    with pytest.raises(UnavailableError, match="no incremental step"):
        generate_detailed(baseline, patcher, ["a"], speculative=2)

    class OwnStep:  # steps one byte at a time, nothing to defer
        def __init__(self, *args):
            pass

    model = get_model(registry, "cross_attention", "cross_attention")
    monkeypatch.setattr(type(model), "incremental_step", lambda self, *args: OwnStep())
    with pytest.raises(UnavailableError, match=r"drafts past the patch boundaries.*\(OwnStep\) has no such step"):
        generate_detailed(model, patcher, ["a"], speculative=2)


def test_decoder_step_without_rewind_is_refused(registry, entropy_files, monkeypatch):
    from blt.plugins.decoders.cross_attention import CrossAttentionDecoderStep

    monkeypatch.delattr(CrossAttentionDecoderStep, "snapshot")
    model, patcher = get_model(registry, "cross_attention", "cross_attention"), get_patcher(registry, "space", entropy_files)
    with pytest.raises(UnavailableError, match=r"decoder step CrossAttentionDecoderStep has no snapshot\(\)"):
        generate_detailed(model, patcher, ["a"], speculative=2)
    generate_detailed(model, patcher, ["a"], max_new_bytes=4)  # plain cached generation still works


def test_stepper_without_rewind_is_deep_copied(registry, entropy_files, monkeypatch):
    """A patcher stepper without snapshot/restore (a plugin's) is copied, with the same result."""
    from blt.entropy.patcher import EntropyStarts

    model, patcher = get_model(registry, "cross_attention", "add"), get_patcher(registry, "entropy", entropy_files)
    kw = dict(max_new_bytes=20, stop_at_eos=False)
    plain = generate_detailed(model, patcher, [as_ids(list(b"ab cd"))], **kw)
    monkeypatch.delattr(EntropyStarts, "snapshot")
    monkeypatch.delattr(EntropyStarts, "restore")
    assert generate_detailed(model, patcher, [as_ids(list(b"ab cd"))], speculative=5, **kw).new_tokens == plain.new_tokens


@pytest.mark.parametrize("decoder", ["cross_attention", "add"])
def test_decoder_without_batched_verification_steps_through_the_draft(registry, entropy_files, monkeypatch, decoder):
    """A decoder step without reserve()/verify() (a plugin's) is rewound and re-decodes the draft
    one position at a time: the same bytes and logits as the one-pass verification."""
    from blt.plugins.decoders.add import AddDecoderStep
    from blt.plugins.decoders.cross_attention import CrossAttentionDecoderStep

    model, patcher = get_model(registry, "cross_attention", decoder), get_patcher(registry, "space_max2", entropy_files)
    kw = dict(max_new_bytes=30, stop_at_eos=False, keep_logits=True, speculative=5)
    ids = [as_ids(list(b"ab cd. ab"))]
    batched = generate_detailed(model, patcher, ids, **kw)
    step = {"cross_attention": CrossAttentionDecoderStep, "add": AddDecoderStep}[decoder]
    monkeypatch.delattr(step, "verify")
    stepwise = generate_detailed(model, patcher, ids, **kw)
    assert stepwise.new_tokens == batched.new_tokens
    for a, b in zip(stepwise.logits, batched.logits):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)
    assert stepwise.speculation == batched.speculation
