"""The package's own tests: each component's maths against a plain reference, exact FLOPs, and
cached generation equal to recomputation. (blt-lab's contract suites run through
``blt check-plugin --family encoder conv_pool`` etc.)"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import blt
from blt.generate import generate_detailed
from blt.attention import masks
from blt.model.layout import PatchLayout
from blt.plugins.attention.eager import EagerAttention

from blt_gated_parts.chunked import ChunkedAttention, ChunkedConfig


def model_config(encoder: dict | None = None, decoder: dict | None = None, attention: str = "chunked") -> dict:
    return {"model": {"d_local": 16, "d_global": 32, "global_layers": 1, "global_heads": 2, "global_ffn": 64},
            "encoder": {"kind": "conv_pool", "heads": 2, "window": 5, "hash_sizes": [2, 3], "hash_buckets": 61,
                        "layers": 1, "ffn_dim": 32, "kernel": 3, **(encoder or {})},
            "decoder": {"kind": "gated", "heads": 2, "window": 7, "layers": 1, "ffn_dim": 32, **(decoder or {})},
            "attention": {"kind": attention, "query_chunk": 5, "key_block": 4} if attention == "chunked" else {"kind": attention}}


def build(registry, seed: int = 0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    return blt.build_model(model_config(**kw), registry=registry)


def batch(registry, texts=("hello world, the cat sat.", "a b  cd.\nxyz")):
    patcher = registry.build_patcher({"kind": "space", "max_patch_length": 4})
    rows = [blt.tokens.encode(t, eos=False) for t in texts]
    N = max(len(r) for r in rows)
    tokens = torch.stack([F.pad(r, (0, N - len(r)), value=blt.tokens.OFFSET + ord(" ")) for r in rows])
    return tokens, patcher.patch(tokens, include_next_token=True).lengths


def layout_and_attends(model, tokens, lengths):
    layout = PatchLayout.from_lengths(tokens, lengths)
    return layout, model.bind_masks(layout)


# --- chunked attention ---------------------------------------------------------------------------

MASKS = {
    "local_block_causal": lambda lay: masks.local_block_causal(lay, 3),
    "patch_causal": lambda lay: masks.patch_causal(lay, block_documents=False),
    "patch_block_causal": lambda lay: masks.patch_causal(lay, block_documents=True),
    "byte_to_patch": lambda lay: masks.byte_to_patch(lay, 2, 2),
    "patch_to_byte": lambda lay: masks.patch_to_byte(lay, 2, 1),
}


@pytest.mark.parametrize("kind", sorted(MASKS))
def test_chunked_equals_eager_forward_and_backward(registry, kind):
    tokens = torch.stack([blt.tokens.encode("ab. cd\nef ghi", eos=False), blt.tokens.encode("x\ny z.\n\nuvw..", eos=False)])
    lengths = torch.tensor([[1, 2, 3, 1, 1, 2, 1, 1, 3], [1, 14, 0, 0, 0, 0, 0, 0, 0]])  # row 1: padding patches, no bytes
    mask = MASKS[kind](PatchLayout.from_lengths(tokens, lengths))
    B, Q, K = mask.shape
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(B, 2, n, 8, generator=g, requires_grad=True) for n in (Q, K, K))
    chunked, eager = ChunkedAttention(ChunkedConfig(query_chunk=3, key_block=5)), EagerAttention()
    out, want = chunked.attend(q, k, v, chunked.prepare(mask)), eager.attend(q, k, v, eager.prepare(mask))
    torch.testing.assert_close(out, want, atol=1e-6, rtol=1e-5)
    no_key = ~mask.dense().any(-1)  # [B, Q]
    assert kind != "byte_to_patch" or bool(no_key.any())  # the slots of padding patches
    assert torch.equal(out.detach()[no_key.unsqueeze(1).expand(B, 2, Q)], torch.zeros(int(no_key.sum()) * 2 * 8).view(-1, 8))
    grad = torch.randn(out.shape, generator=g)
    for a, b in zip(torch.autograd.grad(out, (q, k, v), grad), torch.autograd.grad(want, (q, k, v), grad)):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


# --- the conv_pool encoder ----------------------------------------------------------------------

def test_convolution_is_a_causal_depthwise_filter(registry):
    enc = build(registry).encoder
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    enc = enc.double()
    u = enc.conv_norm(x)
    K = enc.config.kernel
    w = enc.conv_weight[:, 0]  # [d, K]: tap K-1 multiplies byte t, tap K-1-j byte t-j
    c = torch.zeros_like(u)
    for t in range(9):
        for j in range(K):
            if t - j >= 0:
                c[:, t] += w[:, K - 1 - j] * u[:, t - j]
    want = x + enc.conv_out(F.silu(c))
    got = enc.conv_block(x, F.pad(u.transpose(1, 2), (K - 1, 0)))
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("pool", ["attention", "gated_mean"])
def test_pooling_weights_each_patch_by_its_own_bytes(registry, pool):
    enc = build(registry, encoder={"pool": pool}).encoder.double()
    h = torch.randn(2, 11, 16, dtype=torch.float64)
    ids = torch.tensor([[0, 1, 1, 1, 2, 3, 3, 4, 4, 4, 4], [0, 1, 2, 2, 2, 2, 2, 3, 3, 4, 5]])
    got = enc.pool(h, ids, 7)
    H, E = enc.config.pool_heads, enc.out_dim
    for b in range(2):
        for p in range(7):
            rows = h[b, ids[b] == p]
            if not len(rows):
                assert torch.equal(got[b, p], torch.zeros(E, dtype=h.dtype))  # padding patch
                continue
            s = enc.score(rows)  # [n, H]
            a = torch.softmax(s, 0) if pool == "attention" else torch.sigmoid(s) / torch.sigmoid(s).sum(0)
            v = enc.value(rows).view(-1, H, E // H)
            torch.testing.assert_close(got[b, p], (a.unsqueeze(-1) * v).sum(0).reshape(E))


@pytest.mark.parametrize("layers", [0, 2])
def test_encoder_is_causal(registry, layers):
    model = build(registry, encoder={"layers": layers}).double()
    tokens, lengths = batch(registry, ("the cat sat on the mat",))
    t = 10
    changed = tokens.clone()
    changed[0, t + 1:] = blt.tokens.OFFSET + ord("z")
    patcher = registry.build_patcher({"kind": "space", "max_patch_length": 4})
    out = []
    for toks in (tokens, changed):
        lens = patcher.patch(toks, include_next_token=True).lengths
        layout, attends = layout_and_attends(model, toks, lens)
        out.append((model.encoder(toks, layout, attends.encoder), layout))
    (b0, p0), lay0 = out[0]
    (b1, p1), lay1 = out[1]
    torch.testing.assert_close(b0[:, : t + 1], b1[:, : t + 1], atol=0, rtol=0)
    closed = int(lay0.patch_ids_BN[0, t])  # patches before the one holding byte t are complete
    torch.testing.assert_close(p0[:, :closed], p1[:, :closed], atol=0, rtol=0)


# --- the gated decoder ----------------------------------------------------------------------------

def test_gated_decoder_gates_and_shifts_each_byte_by_the_patch_it_reads(registry):
    model = build(registry).double()
    dec = model.decoder
    tokens, lengths = batch(registry)
    layout = PatchLayout.from_lengths(tokens, lengths)
    b = torch.randn(*tokens.shape, 16, dtype=torch.float64)
    g = torch.randn(tokens.shape[0], layout.num_patches, 32, dtype=torch.float64)
    dec.run_layers = lambda h, attend: h  # the part before the layers
    try:
        got = dec(b, g, layout, {"self": None})
    finally:
        del dec.run_layers
    read = g[torch.arange(tokens.shape[0])[:, None], layout.decoder_patch_ids_BN]
    torch.testing.assert_close(got, b * torch.sigmoid(dec.gate(read)) + dec.value(read))


# --- FLOPs, steps, gradients of the whole model --------------------------------------------------

@pytest.mark.parametrize("encoder", [{"layers": 0, "pool": "gated_mean"}, {"layers": 2, "out_dim": 24, "pool_heads": 3}])
def test_flops_equal_the_flop_counter(registry, encoder):
    model = build(registry, encoder=encoder, attention="eager")
    tokens, lengths = batch(registry, ("one row of some bytes, patched by spaces",))
    layout, attends = layout_and_attends(model, tokens, lengths)
    N, P = tokens.shape[1], layout.num_patches
    with torch.no_grad():
        with FlopCounterMode(display=False) as enc_count:
            bytes_, patches = model.encoder(tokens, layout, attends.encoder)
        glob = model.global_transformer(patches, attends.global_transformer)
        with FlopCounterMode(display=False) as dec_count:
            model.decoder(bytes_, glob, layout, attends.decoder)
    assert sum(model.encoder.flops(N, P, "dense").values()) == pytest.approx(enc_count.get_total_flops(), rel=1e-9)
    assert sum(model.decoder.flops(N, P, "dense").values()) == pytest.approx(dec_count.get_total_flops(), rel=1e-9)
    assert sum(model.encoder.flops(N, P).values()) <= enc_count.get_total_flops()  # causal pairs only


@pytest.mark.parametrize("encoder", [{}, {"layers": 0, "kernel": 1}, {"pool": "gated_mean", "kernel": 5}])
@pytest.mark.parametrize("patcher", [{"kind": "space"}, {"kind": "strided", "patch_size": 3}])
def test_cached_generation_equals_recomputation(registry, encoder, patcher):
    model = build(registry, encoder=encoder).eval().double()
    patcher = registry.build_patcher(patcher)
    prompts = ["a b", "hello wor", "x.\ny"]
    kw = dict(max_new_bytes=12, keep_logits=True, stop_at_eos=False)
    cached = generate_detailed(model, patcher, prompts, **kw)
    oracle = generate_detailed(model, patcher, prompts, cache=False, **kw)
    assert cached.new_tokens == oracle.new_tokens
    for a, b in zip(cached.logits, oracle.logits):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)


def test_every_parameter_learns_with_chunked_attention(registry):
    model = build(registry)
    tokens, lengths = batch(registry)
    logits = model(tokens, lengths)
    F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1)).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not missing


# --- blt-lab's contract suites, as `blt check-plugin` runs them, on other settings too --------------

@pytest.mark.parametrize("config", [None, {"layers": 0, "kernel": 1, "pool": "gated_mean", "hash_sizes": []},
                                    {"layers": 2, "heads": 2, "kernel": 6, "out_dim": 12, "pool_heads": 3}])
def test_encoder_contracts(registry, config):
    from blt.testing import check_encoder

    check_encoder("conv_pool", registry=registry, config=config, max_examples=4)


@pytest.mark.parametrize("partner", [None, {"kind": "conv_pool", "heads": 2, "window": 6, "hash_buckets": 61, "ffn_dim": 32}])
def test_decoder_contracts(registry, partner):
    from blt.testing import check_decoder

    check_decoder("gated", registry=registry, config={"heads": 2, "layers": 2, "block_documents": False}, partner=partner,
                  max_examples=4)


def test_attention_contracts(registry):
    from blt.testing import check_attention

    check_attention("chunked", registry=registry, max_examples=4)
