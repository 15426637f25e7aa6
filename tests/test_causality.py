"""Causality: editing byte t never changes the logits at positions < t.

The edited sequence is re-patched by an incremental patcher (``space``, ``strided``), so patch
boundaries before t are unchanged while those from t on may move.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import blt
from blt.model.layout import split_first_patch
from _tiny import small_blt

ALPHABET = b"ab cd.\n1\xc3\xa9"


def model_config(encoder: str, decoder: str, block_documents: bool) -> dict:
    return small_blt(encoder, decoder, block_documents=block_documents)


MODELS = {}


def get_model(registry, key):
    if key not in MODELS:
        torch.manual_seed(0)
        MODELS[key] = blt.build_model(model_config(*key), registry=registry).eval()
    return MODELS[key]


PATCHERS = [{"kind": "space"}, {"kind": "strided", "patch_size": 3}, {"kind": "byte"}, {"kind": "space", "max_patch_length": 2},
            {"kind": "entropy"}, {"kind": "cnn_entropy"}, {"kind": "bpe"}]
PATCHER_CACHE: dict = {}


def get_patcher(registry, table):
    key = repr(sorted(table.items()))
    if key not in PATCHER_CACHE:
        PATCHER_CACHE[key] = registry.build_patcher(table)
    return PATCHER_CACHE[key]


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
@pytest.mark.parametrize("encoder, decoder, block_documents", [
    ("cross_attention", "cross_attention", True),
    ("cross_attention", "add", False),
    ("pooling", "cross_attention", False),
    ("pooling", "add", True),
])
@pytest.mark.parametrize("patcher", PATCHERS, ids=lambda p: "-".join(str(v) for v in p.values()))
@settings(max_examples=8)
@given(data=st.data())
def test_editing_byte_t_leaves_earlier_logits(registry, encoder, decoder, block_documents, patcher, attention, data):
    """Every patcher training accepts, with every encoder, decoder and the eager and sdpa backends:
    the logits before t do not change when the stream at t changes, with patches recomputed the
    way training computes them (``patch_prepared`` on a prepared stream, e.g. bpe's delimiters)."""
    text = data.draw(st.lists(st.sampled_from(list(ALPHABET) + [-2, -3]), min_size=1, max_size=30), label="bytes")
    ids = [1] + [2 if b == -2 else 3 if b == -3 else b + 4 for b in text]  # BOS, bytes, EOS (-2), delimiters (-3)
    t = data.draw(st.integers(1, len(ids) - 1), label="t")
    new_id = data.draw(st.sampled_from([i for i in (2, 3, 36, 101, 14, 200) if i != ids[t]]), label="new id")
    edited = ids.copy()
    edited[t] = new_id
    model = get_model(registry, (encoder, decoder, block_documents))
    model.attention = registry.spec("attention", attention).build(registry.config("attention", {"kind": attention}))
    p = get_patcher(registry, patcher)
    patch = getattr(p, "patch_prepared", p.patch)  # the rule training applies to the stream it stores
    with torch.no_grad():
        outs = []
        for seq in (ids, edited):
            tokens = torch.tensor([seq])
            lengths = split_first_patch(patch(tokens, include_next_token=True).lengths)  # BOS alone
            outs.append(model(tokens, lengths)[0])
    torch.testing.assert_close(outs[1][:t], outs[0][:t], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(outs[1][t:], outs[0][t:])  # the edit is visible from t on (the test can fail)
