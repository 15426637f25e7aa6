"""Generation (issue 6): cached generation equals the no-cache oracle, rows, sampling, streaming, caches.

Helpers and fixtures: ``_generate_helpers.py``; bad input, checkpoints, the CLI and converted HF
models: ``test_generate_inputs.py``.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import blt
from blt.generate import generate, generate_detailed
from blt.tokens import BOS_ID, EOS_ID, OFFSET
from _generate_helpers import COMBOS, PATCHERS, as_ids, assert_same, draw_case, get_model, get_patcher, model_config

pytestmark = pytest.mark.usefixtures("one_thread")


@settings(max_examples=30)
@given(data=st.data())
def test_greedy_cached_equals_nocache_oracle(registry, entropy_files, data):
    model, patcher, ids = draw_case(data, registry, entropy_files, max_bytes=14, max_rows=3)
    max_new = data.draw(st.integers(1, 10), label="max_new_bytes")
    kw = dict(max_new_bytes=max_new, keep_logits=True, stop_at_eos=data.draw(st.booleans(), label="stop_at_eos"))
    cached = generate_detailed(model, patcher, ids, **kw)
    assert_same(cached, generate_detailed(model, patcher, ids, cache=False, **kw))
    assert all(len(t) <= max_new for t in cached.new_tokens)


@pytest.mark.parametrize("encoder, decoder", COMBOS)
@pytest.mark.parametrize("patcher_name", PATCHERS)
def test_long_generation_matches_oracle_past_every_window(registry, entropy_files, encoder, decoder, patcher_name):
    """24 new bytes run well past the local windows (5, 7 bytes), the entropy model's (4) and several patches."""
    model, patcher = get_model(registry, encoder, decoder), get_patcher(registry, patcher_name, entropy_files)
    prompts = ["a b", "hello wor", b"\xc3\xa9t\xc3\xa9 1"]
    kw = dict(max_new_bytes=24, keep_logits=True, stop_at_eos=False)
    cached = generate_detailed(model, patcher, prompts, **kw)
    assert_same(cached, generate_detailed(model, patcher, prompts, cache=False, **kw))
    assert all(n >= 2 for n in cached.patches) and max(cached.patches) > 4  # global steps ran past the first patches


@pytest.mark.parametrize("encoder, options", [("cross_attention", {"cross_window": 1, "cross_all_layers": False}),
                                              ("cross_attention", {"cross_window": 1, "cross_all_layers": True}),
                                              ("pooling", {"mode": "max"}), ("pooling", {"mode": "mean"})])
@pytest.mark.parametrize("prompts", [["hello wor"], ["a b", "hello wor", "x. y"]])
def test_encoder_reading_only_its_own_patch_matches_oracle(registry, entropy_files, encoder, options, prompts):
    """Patch vectors from a patch's own bytes only (``cross_window = 1``, the default, and the
    pooling encoder) have paths of their own: one closing row pools its span whole, several rows
    mask theirs by their patches' starts. The shared helpers' cross-attention encoder uses 2."""
    config = model_config(encoder, "cross_attention")
    config["encoder"].update(options)
    torch.manual_seed(11)
    model = blt.build_model(config, registry=registry).eval().double()
    for name in ("space", "entropy"):
        patcher = get_patcher(registry, name, entropy_files)
        kw = dict(max_new_bytes=20, keep_logits=True, stop_at_eos=False)
        cached = generate_detailed(model, patcher, prompts, **kw)
        assert_same(cached, generate_detailed(model, patcher, prompts, cache=False, **kw))
        assert max(cached.patches) > 4


def test_large_weight_paths_match_oracle(registry, entropy_files, monkeypatch):
    """Weights above ``TRANSPOSE_UP_TO`` stay untransposed views, and the global stack then rotates
    RoPE pairs after its matmul instead of in it: the paths of large models, forced here."""
    from blt.generate import fast_layers

    monkeypatch.setattr(fast_layers, "TRANSPOSE_UP_TO", 0)
    model, patcher = get_model(registry, "cross_attention", "cross_attention"), get_patcher(registry, "space", entropy_files)
    prompts = ["a b", "hello wor", "x. y"]
    kw = dict(max_new_bytes=16, keep_logits=True, stop_at_eos=False)
    cached = generate_detailed(model, patcher, prompts, **kw)
    assert_same(cached, generate_detailed(model, patcher, prompts, cache=False, **kw))
    assert not fast_layers.FastLayer(model.global_transformer.layers[0], rotate_in_matmul=None).rotate_in_matmul


def test_rows_are_independent_of_batch_mates(registry, entropy_files):
    model, patcher = get_model(registry, "cross_attention", "cross_attention"), get_patcher(registry, "entropy", entropy_files)
    prompts = ["x", "the cat sat on", "1 2 3", "the cat sat on"]
    batched = generate(model, patcher, prompts, max_new_bytes=12, stop_at_eos=False)
    alone = [generate(model, patcher, [p], max_new_bytes=12, stop_at_eos=False)[0] for p in prompts]
    assert batched == alone
    assert batched[1] == batched[3]


@pytest.mark.parametrize("sampling", [dict(temperature=1.0), dict(temperature=0.7, top_k=5), dict(temperature=1.3, top_p=0.8),
                                      dict(temperature=1.0, top_k=1)])
def test_sampling_is_seeded_per_row_and_cache_independent(registry, entropy_files, sampling):
    model, patcher = get_model(registry, "pooling", "add"), get_patcher(registry, "space", entropy_files)
    prompts = ["ab", "c d e"]
    kw = dict(max_new_bytes=10, stop_at_eos=False, seed=3, **sampling)
    cached = generate(model, patcher, prompts, **kw)
    assert cached == generate(model, patcher, prompts, cache=False, **kw)
    assert cached == generate(model, patcher, prompts, **kw)  # reproducible
    assert cached[1] == generate(model, patcher, ["zz top", "c d e"], **kw)[1]  # independent of batch-mates
    assert cached[1] == generate(model, patcher, ["c d e"], row_offset=1, **kw)[0]  # its stream is (seed, row)
    if sampling.get("top_k") == 1:  # top-1 sampling is greedy
        assert cached == generate(model, patcher, prompts, max_new_bytes=10, stop_at_eos=False)
    else:  # copies of one prompt draw from different streams
        copies = generate(model, patcher, ["ab"] * 4, **kw)
        assert len(set(copies)) == 4


def test_stream_callback_and_eos_stop(registry, entropy_files):
    model, patcher = get_model(registry, "cross_attention", "add"), get_patcher(registry, "byte", entropy_files)
    seen: dict[int, bytes] = {0: b"", 1: b""}

    def on_bytes(row, data):
        seen[row] += data

    out = generate(model, patcher, ["hi", "there"], max_new_bytes=9, stream=on_bytes, stop_at_eos=False)
    assert [seen[0], seen[1]] == out
    handle = model.lm_head.register_forward_hook(lambda mod, inp, logits: logits.index_add(
        -1, torch.tensor([EOS_ID]), torch.full((*logits.shape[:-1], 1), 1e4, dtype=logits.dtype)))
    try:
        stopped = generate_detailed(model, patcher, ["hi"], max_new_bytes=9)
        running = generate_detailed(model, patcher, ["hi"], max_new_bytes=5, stop_at_eos=False)
    finally:
        handle.remove()
    assert stopped.new_tokens == [[EOS_ID]] and stopped.outputs == [b""]
    assert running.new_tokens == [[EOS_ID] * 5] and running.outputs == [b""]


def test_caches_stay_bounded(registry, entropy_files):
    from blt.generate.cached import CachedGenerator

    model, patcher = get_model(registry, "cross_attention", "cross_attention"), get_patcher(registry, "entropy", entropy_files)
    gen = CachedGenerator(model, patcher, batch=2, total=300)
    tokens = torch.tensor([BOS_ID, BOS_ID])
    with torch.inference_mode():
        for t in range(300):
            gen.step(tokens)
            tokens = torch.tensor([OFFSET + 97 + t % 3, OFFSET + 32 + t % 2])
    assert gen.encoder.stack.store.capacity == 5 and gen.decoder.stack.store.capacity == 7
    assert len(gen.encoder.history.states) <= 2 * 5 + 1  # cross_window 2 patches of at most max_patch_length 5
    assert gen.starts.stepper.stream.stack.store.capacity == 4  # the entropy model's window: a ring of 4 keys


def test_ragged_batch_rows_finish_on_their_own(registry, entropy_files):
    """One row stops at its EOS after one byte while its longer-prompt batch-mate runs to its budget,
    with the bytes it gets alone."""
    model, patcher = get_model(registry, "cross_attention", "cross_attention"), get_patcher(registry, "space", entropy_files)

    def first_row_says_eos(module, inputs, logits):
        if logits.shape[0] == 2:  # only in the batch of two, only row 0
            logits = logits.clone()
            logits[0, EOS_ID] += 1e4
        return logits

    handle = model.lm_head.register_forward_hook(first_row_says_eos)
    try:
        batched = generate_detailed(model, patcher, ["hi", "a longer prompt"], max_new_bytes=11)
    finally:
        handle.remove()
    assert batched.new_tokens[0] == [EOS_ID]
    assert batched.outputs[1] == generate(model, patcher, ["a longer prompt"], max_new_bytes=11)[0]
    assert len(batched.new_tokens[1]) == 11 or batched.new_tokens[1][-1] == EOS_ID


@pytest.mark.parametrize("combo", [COMBOS[0], COMBOS[1]])  # global document blocking on, then off
def test_every_global_step_path_matches_the_oracle(registry, entropy_files, monkeypatch, combo):
    """A batch of 10 ragged rows with EOS in their prompts: steps where one row closes a patch (its
    slots read as views, its document as a range of slots) and where several do (their slots
    gathered) both give the no-cache oracle's bytes and logits."""
    from collections import Counter

    from blt.generate.global_step import GlobalStep

    calls: Counter = Counter()
    for name in ("_close_one", "_close_gathered"):
        def spy(self, *args, _original=getattr(GlobalStep, name), _name=name):
            calls[_name] += 1
            return _original(self, *args)
        monkeypatch.setattr(GlobalStep, name, spy)
    model, patcher = get_model(registry, *combo), get_patcher(registry, "space", entropy_files)
    texts = [b"a b", b"cd. 1", b"\n", b"abc d", b"1 1 1 1", b"dd", b"a", b"cc cc", b"b.a", b"d 1."]
    prompts = [as_ids([-2 if i % 4 == 3 else b for i, b in enumerate(text)]) for text in texts]
    kw = dict(max_new_bytes=14, keep_logits=True, stop_at_eos=False)
    cached = generate_detailed(model, patcher, prompts, **kw)
    assert_same(cached, generate_detailed(model, patcher, prompts, cache=False, **kw))
    assert min(calls.values()) > 0 and len(calls) == 2, calls


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-4), (torch.bfloat16, 6e-2)])
def test_cached_step_matches_the_oracle_in_lower_precision(registry, entropy_files, dtype, tol):
    """The single-query layers' folded norms, transposed weights and fused residuals in float32 and
    bfloat16 (statistics in float32): the logits after a 30-byte prompt (every stack, several global
    steps, a batch of 3 so the gathered global path runs too) equal the no-cache forward's to rounding."""
    import copy

    for combo in COMBOS[:2]:
        model = copy.deepcopy(get_model(registry, *combo)).to(dtype)
        patcher = get_patcher(registry, "space", entropy_files)
        prompts = [b"ab cd.\n1 ab cd ab. cd 1 ab cd", b"a b c d a b c d a b c d a b c", b"1\n1\n1\n1\n1\n1\n1\n1\n1\n1\n11"]
        kw = dict(max_new_bytes=1, keep_logits=True, stop_at_eos=False)
        cached = generate_detailed(model, patcher, prompts, **kw)
        oracle = generate_detailed(model, patcher, prompts, cache=False, **kw)
        for a, b in zip(cached.logits, oracle.logits):
            torch.testing.assert_close(a, b, atol=tol * float(b.abs().max()), rtol=0)


@pytest.mark.parametrize("encoder, decoder", COMBOS)
@pytest.mark.parametrize("patcher_name", ["space", "entropy", "strided"])
@pytest.mark.parametrize("rows", [1, 3])
def test_prompt_prefill_in_blocks_matches_stepping_and_the_oracle(registry, entropy_files, monkeypatch, encoder, decoder,
                                                                  patcher_name, rows):
    """Prompts go in blocks (here of 7 positions, so a 45-byte prompt with EOS takes six, past every
    window), one row or a ragged batch: the new bytes and logits equal the no-cache oracle's and
    stepping's, and the decoder's ring is back to its window afterwards."""
    from blt.generate import cached, prefill

    monkeypatch.setattr(prefill, "BLOCK", 7)
    calls = []
    real_prefill = cached.prefill
    monkeypatch.setattr(cached, "prefill", lambda gen, prompts, device: calls.append(gen) or real_prefill(gen, prompts, device))
    model, patcher = get_model(registry, encoder, decoder), get_patcher(registry, patcher_name, entropy_files)
    # EOS early and near the end: after the prompt the decoder's ring holds both documents
    texts = [list(b"ab cd.\n1 ab") + [-2] + list(b"cd ab. cd 1 ab cd\n1 1 ab cd ab") + [-2] + list(b"1 a"),
             list(b"1 1 ab cd ab. cd\n") + [-2] + list(b"ab cd 1 1 ab ab cd. ab\n1 cd ab 1"),
             list(b"cd cd 1. ab") + [-2] + list(b"\nab 1 cd ab cd 1 ab cd 1 1 ab") + [-2] + list(b"cd ab 1 cd")]
    prompts = [as_ids(text) for text in texts[:rows]]
    kw = dict(max_new_bytes=6, keep_logits=True, stop_at_eos=False)
    blocked = generate_detailed(model, patcher, prompts, **kw)
    assert len(calls) == 1
    stack = calls[0].decoder.stack
    assert stack.pos_C is None and stack.store.capacity == stack.capacity == 7
    assert_same(blocked, generate_detailed(model, patcher, prompts, cache=False, **kw))
    monkeypatch.setattr(cached, "can_prefill", lambda gen, batch: False)
    stepped = generate_detailed(model, patcher, prompts, **kw)
    assert len(calls) == 1 and stepped.new_tokens == blocked.new_tokens
    for a, b in zip(stepped.logits, blocked.logits):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=0)


def test_a_plugin_verify_without_rows_prefills_one_row_only(registry, entropy_files, monkeypatch):
    from blt.generate import cached
    from blt.plugins.decoders.cross_attention import CrossAttentionDecoderStep

    real_verify = CrossAttentionDecoderStep.verify
    monkeypatch.setattr(CrossAttentionDecoderStep, "verify",
                        lambda self, bytes_M1D, t0, doc_M, pushes, reads: real_verify(self, bytes_M1D, t0, doc_M, pushes, reads))
    calls = []
    real_prefill = cached.prefill
    monkeypatch.setattr(cached, "prefill", lambda *args: calls.append(len(args[1])) or real_prefill(*args))
    model, patcher = get_model(registry, "cross_attention", "cross_attention"), get_patcher(registry, "space", entropy_files)
    generate(model, patcher, ["ab cd", "1 1"], max_new_bytes=3)
    generate(model, patcher, ["ab cd"], max_new_bytes=3)
    assert calls == [1]
