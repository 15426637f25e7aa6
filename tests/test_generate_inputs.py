"""Generation (issue 6): third-party and non-incremental patchers, bad input, checkpoints, CLI, HF models."""

from __future__ import annotations

import pytest
import torch

import blt
from blt.core.errors import BltError, InputError, UnavailableError
from blt.generate import generate, generate_detailed, load_generator
from blt.tokens import BOS_ID, OFFSET
from _generate_helpers import assert_same, get_model, get_patcher, model_config

pytestmark = pytest.mark.usefixtures("one_thread")


class ThirdPartySpace:
    """An incremental patcher the generator does not know (the space rule behind another class)."""

    incremental = True

    def __init__(self, inner, stepper=False):
        self.inner, self.config = inner, inner.config
        if stepper:  # the optional protocol: final starts of position t + 1, one byte at a time
            from blt.plugins.patchers.space import SpaceStarts

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
        with pytest.raises(UnavailableError, match="encoder Identity has no incremental step.*cache=False"):
            generate(model, get_patcher(registry, "space", entropy_files), ["ab"], max_new_bytes=2)
    finally:
        model.encoder = original


def test_changed_forward_without_its_own_step_is_refused(registry, entropy_files):
    """A subclass that overrides forward but inherits its parent's step is refused, never silently
    wrong; giving it a step of its own lifts the refusal; --no-cache works throughout."""
    model = get_model(registry, "pooling", "add")
    patcher = get_patcher(registry, "space", entropy_files)
    parent = type(model.encoder)

    class Shifted(parent):
        def forward(self, tokens_BN, layout, attends):
            bytes_BND, patches_BPE = super().forward(tokens_BN, layout, attends)
            return bytes_BND, patches_BPE + 1.0

    class Declared(Shifted):  # says its step is right (here: deliberately the parent's)
        def incremental_step(self, *args):
            return parent.incremental_step(self, *args)

    try:  # the model is shared with other tests: always give it its class back
        model.encoder.__class__ = Shifted
        with pytest.raises(UnavailableError, match=f"overrides forward.*inherits incremental_step.*{parent.__name__}"):
            generate(model, patcher, ["ab"], max_new_bytes=2)
        assert len(generate(model, patcher, ["ab"], max_new_bytes=2, cache=False)[0]) == 2
        model.encoder.__class__ = Declared
        assert len(generate(model, patcher, ["ab"], max_new_bytes=2)[0]) == 2
    finally:
        model.encoder.__class__ = parent


# --- checkpoints and the command line --------------------------------------------------------------


def export(tmp_path, registry, patcher: dict, seq_len: int = 64):
    from blt.experiment import load_experiment
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
