"""build_model and the model's forward: shapes, parameter counts, errors, backend pairing."""

from __future__ import annotations

import pytest
import torch

import blt
from blt.core.errors import ConfigError, InputError, UnavailableError
from blt.model.blocks import ffn_hidden_dim

D, G, K = 32, 64, 2


def tiny(encoder="cross_attention", decoder="cross_attention", attention="eager", **model):
    enc = {"kind": encoder, "heads": 2, "hash_buckets": 97, "hash_sizes": [3, 4]}
    if encoder == "cross_attention":
        enc.update(cross_heads=2, k=K)
    dec = {"kind": decoder, "heads": 2, "layers": 2}
    if decoder == "cross_attention":
        dec.update(cross_heads=2, k=K)
    return {"model": {"d_local": D, "d_global": G, "global_layers": 2, "global_heads": 2, **model},
            "encoder": enc, "decoder": dec, "attention": {"kind": attention}}


def batch(registry, texts=("hello world, this is it", "another one here, my friend!")):
    toks = [blt.tokens.encode(t) for t in texts]
    n = min(len(t) for t in toks)
    tokens = torch.stack([t[:n] for t in toks])
    return tokens, registry.build_patcher({"kind": "space"}).patch(tokens, include_next_token=True).lengths


@pytest.mark.parametrize("encoder", ["cross_attention", "pooling"])
@pytest.mark.parametrize("decoder", ["cross_attention", "add"])
def test_shapes_and_dtype(registry, encoder, decoder):
    model = blt.build_model(tiny(encoder, decoder), registry=registry)
    tokens, lengths = batch(registry)
    logits = model(tokens, lengths)
    assert logits.shape == (*tokens.shape, 260) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


def test_param_counts_by_component(registry):
    model = blt.build_model(tiny(), registry=registry)
    counts = model.param_counts()
    h = ffn_hidden_dim(D)
    layer = lambda d, f: 2 * d + 4 * d * d + 3 * d * f  # noqa: E731
    cross = 2 * D + 4 * D * D
    assert counts["hash_embeddings"] == 2 * 97 * D
    assert counts["encoder"] == 260 * D + layer(D, h) + D * K * D + cross
    assert counts["global"] == 2 * layer(G, ffn_hidden_dim(G))  # k * d_local == d_global: no input projection
    assert counts["decoder"] == G * K * D + 2 * cross + 2 * layer(D, h) + D
    assert counts["head"] == 260 * D
    assert counts["total"] == sum(p.numel() for p in model.parameters())


def test_global_projection_only_when_widths_differ(registry):
    assert blt.build_model(tiny(), registry=registry).global_transformer.token_embedding_projection is None
    model = blt.build_model(tiny("pooling"), registry=registry)  # pooling gives d_local = 32 != 64
    assert model.global_transformer.token_embedding_projection.weight.shape == (G, D)


def test_build_from_toml_path(registry, tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text('[model]\nd_local = 32\nd_global = 64\nglobal_heads = 2\n[encoder]\nkind = "pooling"\nheads = 2\n'
                    'hash_buckets = 50\n[decoder]\nkind = "add"\nheads = 2\n[attention]\nkind = "sdpa"\n')
    model = blt.build_model(path, registry=registry)
    tokens, lengths = batch(registry)
    assert model(tokens, lengths).shape == (*tokens.shape, 260)


def test_backends_agree_on_the_whole_model(registry):
    eager = blt.build_model(tiny(attention="eager"), registry=registry)
    sdpa = blt.build_model(tiny(attention="sdpa"), registry=registry)
    sdpa.load_state_dict(eager.state_dict())
    tokens, lengths = batch(registry)
    torch.testing.assert_close(sdpa(tokens, lengths), eager(tokens, lengths), atol=1e-4, rtol=1e-4)


def test_row_alone_equals_row_in_batch(registry):
    """Zero-length padding patches in a batch never leak into real rows."""
    model = blt.build_model(tiny(), registry=registry)
    tokens, lengths = batch(registry)
    both = model(tokens, lengths)
    for b in range(2):
        row_lengths = lengths[b : b + 1, : int((lengths[b] > 0).sum())]
        torch.testing.assert_close(model(tokens[b : b + 1], row_lengths)[0], both[b], atol=1e-5, rtol=1e-5)


def test_double_residual_and_max_pool_init(registry):
    """With cross-attention outputs zeroed (o_proj = 0), encoder slots are exactly 2 * projected max-pool."""
    model = blt.build_model(tiny(), registry=registry)
    enc = model.encoder
    torch.nn.init.zeros_(enc.cross_attn_layers[0].o_proj.weight)
    tokens, lengths = batch(registry)
    layout = blt.model.layout.PatchLayout.from_lengths(tokens, lengths)
    byte_states, patches = enc(tokens, layout, model.bind_masks(layout).encoder)
    from blt.model.patch_ops import pool_patches
    pooled = pool_patches(byte_states, layout.patch_ids_BN, layout.num_patches, "max")
    torch.testing.assert_close(patches, 2 * enc.patch_embedding_projection(pooled))


@pytest.mark.parametrize("section, field, value, match", [
    ("encoder", "heads", 3, r"\$\.encoder\.heads: 3 heads do not divide the width 32"),
    ("encoder", "cross_heads", 5, r"\$\.encoder\.cross_heads"),
    ("decoder", "heads", 6, r"\$\.decoder\.heads"),
    ("model", "global_heads", 3, r"\$\.model\.global\.heads"),
    ("encoder", "k", 0, r"\$\.encoder\.k"),
    ("decoder", "k", 0, r"\$\.decoder\.k"),
    ("encoder", "window", 0, r"\$\.encoder\.window"),
    ("decoder", "cross_window", 0, r"\$\.decoder\.cross_window"),
    ("encoder", "kv_heads", 3, r"\$\.encoder\.kv_heads"),
])
def test_bad_config_names_the_field(registry, section, field, value, match):
    config = tiny()
    config[section][field] = value
    with pytest.raises(ConfigError, match=match):
        blt.build_model(config, registry=registry)


def test_bad_inputs(registry):
    model = blt.build_model(tiny(), registry=registry)
    tokens, lengths = batch(registry)
    with pytest.raises(InputError, match="token ids must lie in 0..259"):
        model(tokens.clone().fill_(260), lengths)
    with pytest.raises(InputError, match="token ids must lie in 0..259"):
        model(tokens - 5, lengths)
    short = lengths.clone()
    short[0, 1] -= 1
    with pytest.raises(InputError, match="row 0 sums to"):
        model(tokens, short)
    empty_first = lengths.clone()
    empty_first[:, 0], empty_first[:, 1] = 0, empty_first[:, 1] + 1
    with pytest.raises(InputError, match="first patch must hold BOS"):
        model(tokens, empty_first)
    with pytest.raises(InputError, match="rows"):
        model(tokens, lengths[:1])
    with pytest.raises(InputError, match="integer"):
        model(tokens.float(), lengths)


def test_incompatible_backend_lists_working_ones(registry):
    with pytest.raises(ConfigError) as info:
        blt.build_model(tiny(attention="flash"), registry=registry)
    message = str(info.value)
    assert "byte_to_patch" in message and "patch_to_byte" in message
    assert "eager" in message and "sdpa" in message and "flex" in message


def test_flex_training_on_cpu_refused_up_front(registry):
    with pytest.raises(UnavailableError, match="backward on CPU"):
        blt.build_model(tiny(attention="flex"), registry=registry, training=True)
    model = blt.build_model(tiny(attention="flex"), registry=registry)  # inference build is fine
    tokens, lengths = batch(registry)
    with pytest.raises(UnavailableError, match="cannot train on cpu"):
        model(tokens, lengths)  # grad enabled: refused before any kernel runs


def test_flash_unavailable_reason(registry):
    if registry.attention["flash"].is_available() is None:
        pytest.skip("flash-attn is usable here")
    with pytest.raises(UnavailableError, match="flash-attn"):
        blt.build_model(tiny("pooling", "add", attention="flash"), registry=registry)


def test_static_lengths_feed_the_model_directly(registry):
    """strided cuts from 0 (first patch = BOS + 3 bytes); the model splits BOS off itself, which
    gives exactly the logits of lengths already split by hand."""
    from blt.experiment import load_experiment
    from blt.model.layout import split_first_patch

    cfg, reg = load_experiment({"patcher": {"kind": "strided", "patch_size": 4}}, registry)
    model = blt.build_model(cfg, registry=reg).eval()
    tokens = blt.tokens.encode("static patches cut from zero").unsqueeze(0)
    lengths = reg.build_patcher(cfg.patcher).patch(tokens, include_next_token=True).lengths
    assert int(lengths[0, 0]) == 4
    with torch.no_grad():
        torch.testing.assert_close(model(tokens, lengths), model(tokens, split_first_patch(lengths)), rtol=0, atol=0)
