"""Generation (issue 6): cached generation equals the no-cache oracle; bad input fails clearly; CLI.

Models are tiny, randomly initialised and run in float64 with the ``sdpa`` backend, so cached and
recomputed logits agree to ~1e-12 before the float32 cast and greedy choices cannot flip on
rounding. Entropy models get a scaled-up head so their entropies spread and patch sizes vary.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import blt
from blt.core.errors import BltError, InputError, UnavailableError
from blt.generate import generate, generate_detailed, load_generator
from blt.tokens import BOS_ID, EOS_ID, OFFSET

ALPHABET = b"ab cd.\n1\xc3\xa9"
COMBOS = [("cross_attention", "cross_attention"), ("pooling", "add"), ("cross_attention", "add"), ("pooling", "cross_attention")]
PATCHERS = ["strided", "space", "byte", "entropy", "cnn_entropy", "space_max2"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Single-query steps are tiny: one thread avoids oversubscription on shared CPUs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def model_config(encoder: str, decoder: str, block_documents: bool = True, local_blocks: bool = True) -> dict:
    enc = {"kind": encoder, "heads": 2, "window": 5, "hash_buckets": 61, "hash_sizes": [2, 3], "layers": 2, "ffn_dim": 32,
           "block_documents": local_blocks}
    if encoder == "cross_attention":
        enc.update(cross_heads=2, k=2, cross_all_layers=True, cross_window=2)
    dec = {"kind": decoder, "heads": 2, "layers": 2, "window": 7, "ffn_dim": 32, "block_documents": local_blocks}
    if decoder == "cross_attention":
        dec.update(cross_heads=2, k=2, cross_window=2)
    return {"model": {"d_local": 16, "d_global": 32, "global_layers": 2, "global_heads": 2, "global_ffn": 64,
                      "block_documents": block_documents},
            "encoder": enc, "decoder": dec, "attention": {"kind": "sdpa"}}


_MODELS: dict = {}
_PATCHERS: dict = {}


def get_model(registry, encoder, decoder):
    key = (encoder, decoder)
    if key not in _MODELS:
        index = COMBOS.index(key)  # seed and document blocking fixed per combination, whatever the test order
        torch.manual_seed(index)  # global and local document blocking take all four on/off pairs across COMBOS
        _MODELS[key] = blt.build_model(model_config(encoder, decoder, block_documents=index % 2 == 0, local_blocks=index < 2),
                                       registry=registry).eval().double()
    return _MODELS[key]


@pytest.fixture(scope="module")
def entropy_files(tmp_path_factory):
    from blt.entropy import CNNEntropyConfig, CNNEntropyModel, TransformerEntropyConfig, TransformerEntropyModel, save_entropy_model

    root = tmp_path_factory.mktemp("entropy")
    torch.manual_seed(7)
    transformer = TransformerEntropyModel(TransformerEntropyConfig(dim=16, layers=2, heads=2, ffn_dim=32, window=4))
    cnn = CNNEntropyModel(CNNEntropyConfig(dim=8, hidden=16, mlp_layers=2))
    with torch.no_grad():
        transformer.lm_head.weight.mul_(20)
        cnn.lm_head.weight.mul_(20)
    return {"entropy": save_entropy_model(transformer, root / "transformer.safetensors"),
            "cnn_entropy": save_entropy_model(cnn, root / "cnn.safetensors")}


def get_patcher(registry, name, entropy_files):
    if name not in _PATCHERS:
        config = {"strided": {"kind": "strided", "patch_size": 3}, "space": {"kind": "space"}, "byte": {"kind": "byte"},
                  "space_max2": {"kind": "space", "max_patch_length": 2},
                  "entropy": {"kind": "entropy", "model_path": str(entropy_files["entropy"]), "threshold": 0.05,
                              "max_patch_length": 5},
                  "cnn_entropy": {"kind": "cnn_entropy", "model_path": str(entropy_files["cnn_entropy"]),
                                  "relative_threshold": 0.02}}[name]
        patcher = registry.build_patcher(config)
        if name in ("entropy", "cnn_entropy"):
            patcher.model.double()
        _PATCHERS[name] = patcher
    return _PATCHERS[name]


def as_ids(prompt: list[int]) -> list[int]:
    """Drawn bytes (-2 stands for EOS) -> token ids with BOS."""
    return [BOS_ID] + [EOS_ID if b == -2 else b + OFFSET for b in prompt]


def assert_same(cached, oracle):
    assert cached.new_tokens == oracle.new_tokens
    assert cached.outputs == oracle.outputs
    for a, b in zip(cached.logits, oracle.logits):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@settings(max_examples=30)
@given(data=st.data())
def test_greedy_cached_equals_nocache_oracle(registry, entropy_files, data):
    encoder, decoder = data.draw(st.sampled_from(COMBOS), label="encoder, decoder")
    patcher_name = data.draw(st.sampled_from(PATCHERS), label="patcher")
    prompts = data.draw(st.lists(st.lists(st.sampled_from(list(ALPHABET) + [-2]), min_size=1, max_size=14),
                                 min_size=1, max_size=3), label="prompts")
    max_new = data.draw(st.integers(1, 10), label="max_new_bytes")
    model, patcher = get_model(registry, encoder, decoder), get_patcher(registry, patcher_name, entropy_files)
    ids = [as_ids(p) for p in prompts]
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
    assert cached[1] == generate(model, patcher, ["c d e"], **kw)[0]  # independent of batch-mates
    if sampling.get("top_k") == 1:  # top-1 sampling is greedy
        assert cached == generate(model, patcher, prompts, max_new_bytes=10, stop_at_eos=False)


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
    assert gen.starts.stepper.state.key_pos_BS.shape[1] <= 3  # entropy window 4: 3 cached keys


class ThirdPartySpace:
    """An incremental patcher the generator does not know (the space rule behind another class)."""

    incremental = True

    def __init__(self, inner, stepper=False):
        self.inner, self.config = inner, inner.config
        if stepper:  # the optional protocol: final starts of position t + 1, one byte at a time
            from blt.generate.patch_starts import SpaceStarts

            self.start_stepper = lambda batch: SpaceStarts()

    def patch(self, tokens, *, include_next_token=False, entropies=None):
        return self.inner.patch(tokens, include_next_token=include_next_token, entropies=entropies)


@pytest.mark.parametrize("name, stepper", [("space_max2", False), ("space", True)], ids=["repatch-fallback", "own-stepper"])
def test_unknown_incremental_patcher(registry, entropy_files, name, stepper):
    """Without a stepper the prefix is re-patched (exact, O(t) per byte); ``start_stepper`` gives final starts."""
    model = get_model(registry, "cross_attention", "cross_attention")
    patcher = ThirdPartySpace(get_patcher(registry, name, entropy_files), stepper=stepper)
    prompts = ["ab cd", "x"]
    kw = dict(max_new_bytes=12, keep_logits=True, stop_at_eos=False)
    assert_same(generate_detailed(model, patcher, prompts, **kw), generate_detailed(model, patcher, prompts, cache=False, **kw))


# --- bad input -------------------------------------------------------------------------------------


class NotIncremental:
    """A patcher whose boundaries may move when bytes are appended (like bpe)."""

    incremental = False

    def __init__(self, inner):
        self.inner = inner

    def patch(self, tokens, *, include_next_token=False, entropies=None):
        return self.inner.patch(tokens, include_next_token=include_next_token, entropies=entropies)


@pytest.mark.parametrize("prompts, message", [
    ([""], "empty (BOS only)"),
    ([b""], "empty (BOS only)"),
    ([[BOS_ID]], "empty (BOS only)"),
    (torch.tensor([[BOS_ID]]), "empty (BOS only)"),
    ([], "no prompts"),
    ([[OFFSET + 97, OFFSET + 98]], "start with BOS"),
    ([[BOS_ID, 300]], "0..259"),
    ([3.5], "must be str, bytes"),
])
def test_bad_prompts(registry, entropy_files, prompts, message):
    model, patcher = get_model(registry, "pooling", "add"), get_patcher(registry, "space", entropy_files)
    with pytest.raises(InputError, match="^prompt|^no prompts|^token") as info:
        generate(model, patcher, prompts, max_new_bytes=2)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("kwargs, field", [
    (dict(temperature=-0.1), "temperature"), (dict(temperature=float("nan")), "temperature"),
    (dict(top_k=0), "top_k"), (dict(top_k=2.5), "top_k"),
    (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p"), (dict(top_p=-1), "top_p"),
    (dict(max_new_bytes=0), "max_new_bytes"), (dict(seed="x"), "seed"),
])
def test_bad_sampling_parameters(registry, entropy_files, kwargs, field):
    model, patcher = get_model(registry, "pooling", "add"), get_patcher(registry, "space", entropy_files)
    kw = {"max_new_bytes": 2, **kwargs}
    with pytest.raises(InputError, match=f"^{field}"):
        generate(model, patcher, ["ab"], **kw)


def test_prompt_longer_than_context(registry, entropy_files):
    model, patcher = get_model(registry, "pooling", "add"), get_patcher(registry, "space", entropy_files)
    assert generate(model, patcher, ["abcd"], max_new_bytes=3, context=5)  # 5 tokens with BOS: fits
    with pytest.raises(InputError, match="longer than the model's context of 5"):
        generate(model, patcher, ["abcde"], max_new_bytes=3, context=5)


def test_non_incremental_patcher_refused_for_cached_generation_only(registry, entropy_files):
    model = get_model(registry, "pooling", "add")
    patcher = NotIncremental(get_patcher(registry, "space", entropy_files))
    with pytest.raises(UnavailableError, match="not incremental.*--no-cache"):
        generate(model, patcher, ["ab"], max_new_bytes=2)
    assert generate(model, patcher, ["ab"], max_new_bytes=3, cache=False) == generate(
        model, get_patcher(registry, "space", entropy_files), ["ab"], max_new_bytes=3)


def test_unsupported_component_refused_with_a_clear_message(registry, entropy_files):
    model = get_model(registry, "pooling", "add")
    original = model.encoder
    model.encoder = torch.nn.Identity()
    try:
        with pytest.raises(UnavailableError, match="no incremental form of encoder Identity.*cache=False"):
            generate(model, get_patcher(registry, "space", entropy_files), ["ab"], max_new_bytes=2)
    finally:
        model.encoder = original


# --- checkpoints and the command line --------------------------------------------------------------


def export(tmp_path, registry, patcher: dict, seq_len: int = 64):
    from blt.core.experiment import load_experiment
    from blt.train.trainer import export_weights

    data = {**model_config("cross_attention", "cross_attention"), "patcher": patcher, "data": {"seq_len": seq_len}}
    config, reg = load_experiment(data, registry)
    torch.manual_seed(0)
    model = blt.build_model(config, registry=reg)
    export_weights(model, config, tmp_path / "run" / "export")
    return tmp_path / "run"


def test_load_exported_checkpoint(tmp_path, registry):
    run_dir = export(tmp_path, registry, {"kind": "space"}, seq_len=32)
    loaded = load_generator(run_dir)
    assert loaded.context == 32 and loaded.source == run_dir
    again = load_generator(run_dir / "export" / "model.safetensors")
    for (name, a), b in zip(loaded.model.state_dict().items(), again.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_checkpoint_without_its_entropy_model(tmp_path, registry):
    run_dir = export(tmp_path, registry, {"kind": "entropy", "model_path": str(tmp_path / "gone.safetensors"), "threshold": 1.0})
    with pytest.raises(InputError, match="needs an entropy model.*gone.safetensors") as info:
        load_generator(run_dir)
    assert "\n" not in str(info.value)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(BltError, match="not found|does not exist"):
        load_generator(tmp_path / "nope")
    with pytest.raises(BltError, match="no checkpoint in"):
        load_generator(tmp_path)


def test_cli_end_to_end(tmp_path, registry, capsysbinary):
    from blt.cli.main import main

    run_dir = export(tmp_path, registry, {"kind": "space"}, seq_len=16)
    loaded = load_generator(run_dir)
    expected = generate(loaded.model, loaded.patcher, ["hello", "a b"], max_new_bytes=12)
    base = ["generate", str(run_dir), "--prompt", "hello", "--prompt", "a b", "--max-bytes", "12"]
    assert main(base + ["--no-stream"]) == 0
    plain = capsysbinary.readouterr().out
    assert plain == b"hello" + expected[0] + b"\n" + b"a b" + expected[1] + b"\n"
    assert main(base) == 0  # streaming prints the same bytes
    assert capsysbinary.readouterr().out == plain
    assert main(base + ["--no-cache", "--no-stream"]) == 0
    assert capsysbinary.readouterr().out == plain
    assert main(base + ["--temperature", "0.8", "--top-k", "20", "--top-p", "0.9", "--seed", "1", "--no-stream"]) == 0
    assert capsysbinary.readouterr().out.count(b"\n") >= 2


@pytest.mark.parametrize("extra, message", [
    (["--prompt", ""], b"empty (BOS only)"),
    (["--prompt", "x" * 20], b"longer than the model's context of 16"),
    (["--prompt", "a", "--temperature", "-1"], b"temperature must be"),
    (["--prompt", "a", "--top-p", "2"], b"top_p must lie in (0, 1]"),
    (["--prompt", "a", "--top-k", "0"], b"top_k must be"),
])
def test_cli_bad_input_is_one_line(tmp_path, registry, capsysbinary, extra, message):
    from blt.cli.main import main

    run_dir = export(tmp_path, registry, {"kind": "space"}, seq_len=16)
    assert main(["generate", str(run_dir), *extra]) == 2
    captured = capsysbinary.readouterr()
    assert message in captured.err and captured.err.strip().count(b"\n") == 0
    assert captured.out == b""


def test_converted_hugging_face_model(registry):
    """A model converted from transformers' BltForCausalLM (its entropy patcher included) generates the
    same bytes cached and recomputed; float32 here, so logits agree to float tolerance."""
    pytest.importorskip("transformers")
    from test_interop import make_hf

    from blt import interop

    model, patcher = interop.from_transformers(make_hf(seed=1, threshold=4.0))
    prompts = ["Hello, world", "ab"]
    kw = dict(max_new_bytes=16, keep_logits=True, stop_at_eos=False)
    cached = generate_detailed(model, patcher, prompts, **kw)
    oracle = generate_detailed(model, patcher, prompts, cache=False, **kw)
    assert cached.new_tokens == oracle.new_tokens
    for a, b in zip(cached.logits, oracle.logits):
        torch.testing.assert_close(a, b, atol=2e-4, rtol=2e-4)
