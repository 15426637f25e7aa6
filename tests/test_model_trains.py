"""Every encoder x decoder x CPU-trainable backend that builds also trains: 30 CPU steps on the
built-in corpus lower the loss on a fixed batch. Backends without CPU backward are refused up front."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

import blt
from blt.core.errors import UnavailableError
from blt.corpus import load_builtin_corpus

STEPS, B, N = 30, 4, 64


def config(encoder: str, decoder: str, attention: str) -> dict:
    enc = {"kind": encoder, "heads": 2, "window": 32, "hash_buckets": 251, "hash_sizes": [3, 4]}
    if encoder == "cross_attention":
        enc.update(cross_heads=2, k=2)
    dec = {"kind": decoder, "heads": 2, "layers": 1, "window": 32}
    if decoder == "cross_attention":
        dec.update(cross_heads=2, k=2)
    return {"model": {"d_local": 32, "d_global": 64, "global_layers": 1, "global_heads": 2},
            "encoder": enc, "decoder": dec, "attention": {"kind": attention}}


@pytest.fixture(scope="module")
def batches(registry):
    """Windows of N bytes (BOS + text) from the corpus, patched by ``space`` with the next token."""
    text = "".join(doc.text for doc in load_builtin_corpus("train", sources=["kjv"])[:2])
    ids = blt.tokens.encode(text, bos=False, eos=False)
    g = torch.Generator().manual_seed(0)
    starts = torch.randint(0, len(ids) - N, (STEPS + 1, B), generator=g)
    windows = torch.stack([torch.stack([ids[s : s + N] for s in row]) for row in starts])  # (STEPS+1, B, N)
    windows[:, :, 0] = blt.tokens.BOS_ID
    patcher = registry.build_patcher({"kind": "space"})
    return [(w, patcher.patch(w, include_next_token=True).lengths) for w in windows]


def loss_of(model, tokens, lengths):
    logits = model(tokens, lengths)
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


def trainable_backends(registry):
    return [n for n, s in registry.attention.items() if s.is_available() is None and s.can_train("cpu") is None]


@pytest.mark.parametrize("encoder, decoder", list(itertools.product(["cross_attention", "pooling"], ["cross_attention", "add"])))
def test_combination_trains_on_cpu(registry, batches, encoder, decoder):
    backends = trainable_backends(registry)
    assert {"eager", "sdpa"} <= set(backends)
    for attention in backends:
        torch.manual_seed(0)
        model = blt.build_model(config(encoder, decoder, attention), registry=registry, training=True)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        eval_tokens, eval_lengths = batches[-1]
        with torch.no_grad():
            before = float(loss_of(model, eval_tokens, eval_lengths))
        for tokens, lengths in batches[:STEPS]:
            opt.zero_grad()
            loss = loss_of(model, tokens, lengths)
            loss.backward()
            opt.step()
        with torch.no_grad():
            after = float(loss_of(model, eval_tokens, eval_lengths))
        assert after < before - 1.0, f"{encoder}/{decoder}/{attention}: loss {before:.3f} -> {after:.3f}"


def test_backends_without_cpu_backward_are_refused_up_front(registry):
    refused = [n for n, s in registry.attention.items() if s.is_available() is None and s.can_train("cpu")]
    assert "flex" in refused
    for name in refused:
        with pytest.raises(UnavailableError, match="cannot train on cpu") as info:
            blt.build_model(config("cross_attention", "cross_attention", name), registry=registry, training=True)
        assert registry.attention[name].can_train("cpu") in str(info.value)
