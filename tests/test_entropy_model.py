"""Entropy models: row independence, chunking invariance, the window, EOS blocks, save/load."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from blt.entropy import (
    CNNEntropyConfig,
    CNNEntropyModel,
    EntropyModelError,
    TransformerEntropyConfig,
    TransformerEntropyModel,
    entropies,
    load_entropy_model,
    save_entropy_model,
)
from blt.tokens import EOS_ID

WINDOW = 16
ATOL = 2e-5


def small_transformer(window: int = WINDOW) -> TransformerEntropyModel:
    torch.manual_seed(0)
    return TransformerEntropyModel(TransformerEntropyConfig(dim=32, layers=2, heads=4, kv_heads=2, ffn_dim=64, window=window)).eval()


def small_cnn() -> CNNEntropyModel:
    torch.manual_seed(0)
    return CNNEntropyModel(CNNEntropyConfig(dim=16, hidden=32)).eval()


MODELS = {"transformer": small_transformer(), "cnn": small_cnn()}
token_ids = st.integers(0, 299).map(lambda v: EOS_ID if v >= 290 else v % 260)  # ~3% EOS
row = st.lists(token_ids, min_size=1, max_size=60)


@pytest.mark.parametrize("kind", MODELS)
@given(rows=st.lists(row, min_size=2, max_size=4), which=st.integers(0, 3))
def test_row_independent_of_batch_mates_and_padding(kind, rows, which):
    model = MODELS[kind]
    which %= len(rows)
    batch = torch.nn.utils.rnn.pad_sequence([torch.tensor(r) for r in rows], batch_first=True, padding_value=0)
    alone = entropies(model, torch.tensor(rows[which]))
    in_batch = entropies(model, batch, chunk=7)[which, : len(rows[which])]
    torch.testing.assert_close(in_batch, alone, atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind", MODELS)
@given(stream=st.lists(token_ids, min_size=1, max_size=120), chunk=st.integers(1, 40), cut=st.integers(0, 119))
def test_chunked_stream_equals_full(kind, stream, chunk, cut):
    """Streaming with the model state (KV cache within the window), and recomputing a suffix from
    scratch with a window's worth of left context, both match the full computation."""
    model = MODELS[kind]
    x = torch.tensor(stream)
    full = entropies(model, x, chunk=1000)
    torch.testing.assert_close(entropies(model, x, chunk=chunk), full, atol=ATOL, rtol=0)
    state = model.new_state(1)
    cut %= len(stream)
    two_calls = torch.cat([entropies(model, x[None, :cut], state=state), entropies(model, x[None, cut:], state=state)], 1)[0]
    torch.testing.assert_close(two_calls, full, atol=ATOL, rtol=0)
    left = max(0, cut - (model.context - 1))
    torch.testing.assert_close(entropies(model, x[left:])[cut - left :], full[cut:], atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind", MODELS)
def test_context_limit(kind):
    """A token more than ``context - 1`` positions back has no influence; a nearer one does."""
    model = MODELS[kind]
    ctx = model.context
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(4, 260, (1, 3 * ctx + 5), generator=gen)
    j = ctx
    y = x.clone()
    y[0, j] = 4 + (int(x[0, j]) - 4 + 77) % 256
    ex, ey = entropies(model, x), entropies(model, y)
    diff = (ex - ey).abs()[0]
    assert diff[: j].max() == 0  # causal
    assert diff[j + ctx :].max() <= ATOL  # beyond the window
    assert diff[j : j + ctx].max() > 1e-4  # within it: an untrained model still reacts


@pytest.mark.parametrize("kind", MODELS)
def test_eos_blocks_documents(kind):
    """Tokens before an EOS (the EOS included in their block) do not influence anything after it."""
    model = MODELS[kind]
    gen = torch.Generator().manual_seed(2)
    x = torch.randint(4, 260, (1, 40), generator=gen)
    k = 12
    x[0, k] = EOS_ID
    y = x.clone()
    y[0, :k] = torch.randint(4, 260, (k,), generator=gen)
    diff = (entropies(model, x) - entropies(model, y)).abs()[0]
    assert diff[k + 1 :].max() <= ATOL
    assert diff[: k + 1].max() > 1e-4


def test_each_layer_respects_the_window():
    """One layer with the default window 512: a token 512 or more positions back has no influence."""
    torch.manual_seed(0)
    model = TransformerEntropyModel(TransformerEntropyConfig(dim=32, layers=1, heads=4, ffn_dim=64)).eval()
    assert model.config.window == 512 and model.context == 512
    x = torch.randint(4, 260, (1, 700), generator=torch.Generator().manual_seed(3))
    y = x.clone()
    y[0, 10] = 4
    diff = (entropies(model, x) - entropies(model, y)).abs()[0]
    assert diff[10 + 512 :].max() <= ATOL and diff[400 : 10 + 512].max() > 1e-6
    q = torch.arange(6)[None]
    mask = TransformerEntropyModel(TransformerEntropyConfig(dim=8, layers=1, heads=2, window=3)).attention_mask(
        q, torch.tensor([[0, 0, 0, 1, 1, 1]]), q, torch.tensor([[0, 0, 0, 1, 1, 1]]))[0, 0]
    assert mask.int().tolist() == [[1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0],
                                   [0, 0, 0, 1, 0, 0], [0, 0, 0, 1, 1, 0], [0, 0, 0, 1, 1, 1]]


def test_hf_patcher_layout_and_paper_preset():
    names = set(small_transformer().state_dict())
    for n in ("embed_tokens.weight", "layers.1.input_layernorm.weight", "layers.0.self_attn.q_proj.weight",
              "layers.0.self_attn.o_proj.weight", "layers.0.post_attention_layernorm.weight",
              "layers.0.mlp.gate_proj.weight", "layers.0.mlp.up_proj.weight", "layers.0.mlp.down_proj.weight",
              "norm.weight", "lm_head.weight"):
        assert n in names
    cfg = TransformerEntropyConfig.preset("paper")
    assert (cfg.dim, cfg.layers, cfg.heads, cfg.ffn_dim, cfg.window, cfg.rope_theta) == (768, 14, 12, 2048, 512, 10000.0)
    with torch.device("meta"):
        model = TransformerEntropyModel(cfg)
    non_embedding = sum(p.numel() for n, p in model.named_parameters() if n not in ("embed_tokens.weight", "lm_head.weight"))
    assert 98e6 < non_embedding < 100e6  # ~99M, the paper's "100M" entropy model


def test_entropy_in_nats_over_260():
    model = small_transformer()
    with torch.no_grad():
        model.lm_head.weight.zero_()  # uniform prediction
    e = entropies(model, torch.tensor([1, 50, 60]))
    torch.testing.assert_close(e, torch.full((3,), float(torch.log(torch.tensor(260.0)))))


@pytest.mark.parametrize("kind", MODELS)
def test_save_load_round_trip(tmp_path, kind):
    model = MODELS[kind]
    path = save_entropy_model(model, tmp_path / "m.safetensors", recipe={"steps": 3})
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["kind"] == kind and meta["vocab_size"] == 260 and meta["recipe"] == {"steps": 3}
    loaded = load_entropy_model(path)
    x = torch.randint(0, 260, (2, 30))
    torch.testing.assert_close(entropies(loaded, x), entropies(model, x), atol=0, rtol=0)
    with pytest.raises(EntropyModelError, match="needs a"):
        load_entropy_model(path, expect_kind="cnn" if kind == "transformer" else "transformer")


def test_bad_model_files(tmp_path):
    path = save_entropy_model(small_transformer(), tmp_path / "m.safetensors")
    with pytest.raises(EntropyModelError, match="not found"):
        load_entropy_model(tmp_path / "missing.safetensors")
    meta = json.loads(path.with_suffix(".json").read_text())
    other = dict(meta, vocab_size=256)
    path.with_suffix(".json").write_text(json.dumps(other))
    with pytest.raises(EntropyModelError, match="vocabulary of 256"):
        load_entropy_model(path)
    path.with_suffix(".json").write_text(json.dumps(dict(meta, config={**meta["config"], "dim": 64})))
    with pytest.raises(EntropyModelError, match="shape"):
        load_entropy_model(path)
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(EntropyModelError, match="corrupt"):
        load_entropy_model(path)
    path.with_suffix(".json").write_text(json.dumps(meta))
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(EntropyModelError, match="corrupt safetensors"):
        load_entropy_model(path)
    path.with_suffix(".json").unlink()
    with pytest.raises(EntropyModelError, match="config not found"):
        load_entropy_model(path)


def test_other_vocab_weights(tmp_path):
    """A checkpoint whose embedding has another vocabulary is refused by shape, naming the tensor."""
    from safetensors.torch import save_file

    path = save_entropy_model(small_cnn(), tmp_path / "c.safetensors")
    sd = {k: v.clone() for k, v in small_cnn().state_dict().items()}
    sd["embed_tokens.weight"] = torch.zeros(256, 16)
    save_file(sd, str(path))
    with pytest.raises(EntropyModelError, match=r"embed_tokens.weight .*vocabulary 256"):
        load_entropy_model(path)
