"""The transformer entropy model's one-token stream (generation's patching) equals its forward."""

from __future__ import annotations

import pytest
import torch

from blt.entropy import TransformerEntropyConfig, TransformerEntropyModel
from blt.tokens import BOS_ID, EOS_ID, OFFSET

pytestmark = pytest.mark.usefixtures("one_thread")


def documents(tokens: list[int]) -> list[list[int]]:
    """Split after each EOS (the EOS closes its document)."""
    docs, cur = [], []
    for token in tokens:
        cur.append(token)
        if token == EOS_ID:
            docs.append(cur)
            cur = []
    return docs + ([cur] if cur else [])


@pytest.mark.parametrize("block_documents", [True, False])
def test_fast_stream_equals_the_forward_of_each_document(block_documents):
    """Past the window (4) and across EOS, rows of different content in one batch: each position's
    logits equal the model's forward over that position's document alone. The stream's positions
    run on across documents, so later documents agree to the float32 RoPE tables' rounding only
    (attention sees relative positions); the first agrees to float64 rounding."""
    torch.manual_seed(0)
    model = TransformerEntropyModel(TransformerEntropyConfig(dim=16, layers=2, heads=2, ffn_dim=32, window=4,
                                                             block_documents=block_documents)).double().eval()
    g = torch.Generator().manual_seed(1)
    rows = [[BOS_ID] + [OFFSET + int(x) for x in torch.randint(97, 100, (30,), generator=g)] for _ in range(2)]
    rows[0][9] = rows[0][20] = EOS_ID
    rows[1][14] = EOS_ID
    with torch.inference_mode():
        stream = model.fast_stream(2)
        got = torch.stack([stream.step(torch.tensor([r[t] for r in rows])) for t in range(len(rows[0]))], dim=1)
        for b, row in enumerate(rows):
            docs = documents(row)
            want = torch.cat([model(torch.tensor([doc]))[0] for doc in docs])
            first = len(docs[0])
            torch.testing.assert_close(got[b, :first], want[:first], atol=1e-10, rtol=1e-10)
            torch.testing.assert_close(got[b], want, atol=2e-6, rtol=1e-5)


def test_fast_stream_rewinds():
    torch.manual_seed(0)
    model = TransformerEntropyModel(TransformerEntropyConfig(dim=16, layers=1, heads=2, ffn_dim=32, window=4)).double().eval()
    with torch.inference_mode():
        stream = model.fast_stream(1)
        for token in (BOS_ID, OFFSET + 97, OFFSET + 98):
            stream.step(torch.tensor([token]))
        mark = stream.snapshot()
        first = [stream.step(torch.tensor([t])) for t in (OFFSET + 99, EOS_ID, OFFSET + 97, OFFSET + 98, OFFSET + 99)]
        stream.restore(mark)
        again = [stream.step(torch.tensor([t])) for t in (OFFSET + 99, EOS_ID, OFFSET + 97, OFFSET + 98, OFFSET + 99)]
        stream.commit()
    for a, b in zip(first, again):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_cnn_fast_stream_equals_the_forward():
    """The CNN's table stream gives the forward's logits, an EOS hiding the token before the next."""
    from blt.entropy import CNNEntropyConfig, CNNEntropyModel

    torch.manual_seed(0)
    model = CNNEntropyModel(CNNEntropyConfig(dim=16, hidden=32, mlp_layers=3)).double().eval()
    g = torch.Generator().manual_seed(2)
    rows = [[BOS_ID] + [OFFSET + int(x) for x in torch.randint(97, 101, (20,), generator=g)] for _ in range(2)]
    rows[0][7] = EOS_ID
    with torch.inference_mode():
        stream = model.fast_stream(2)
        got = torch.stack([stream.step(torch.tensor([r[t] for r in rows])) for t in range(len(rows[0]))], dim=1)
        want = model(torch.tensor(rows))
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("name, model_class", [("entropy", "TransformerEntropyModel"), ("cnn_entropy", "CNNEntropyModel")])
def test_models_without_a_fast_stream_patch_through_their_forward(registry, entropy_files, monkeypatch, name, model_class):
    """An entropy model without fast_stream (a plugin's) steps through its forward and stream state
    (ModuleStream): cached generation still equals the no-cache oracle, and so does speculative."""
    import blt.entropy as entropy
    from blt.generate import generate_detailed
    from _generate_helpers import as_ids, get_model, get_patcher

    monkeypatch.delattr(getattr(entropy, model_class), "fast_stream")
    model, patcher = get_model(registry, "cross_attention", "cross_attention"), get_patcher(registry, name, entropy_files)
    ids = [as_ids(list(b"ab cd. ab") + [-2] + list(b"c d")), as_ids(list(b"a"))]
    kw = dict(max_new_bytes=20, stop_at_eos=False)
    oracle = generate_detailed(model, patcher, ids, cache=False, **kw).new_tokens
    assert generate_detailed(model, patcher, ids, **kw).new_tokens == oracle
    assert generate_detailed(model, patcher, ids, speculative=4, **kw).new_tokens == oracle
