"""Per-byte scoring: target_nats per model family, rolling windows, continuations, evaluate() agreement."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import blt
from blt.core.errors import InputError
from blt.evaluation.score import Scorer, credit_map
from blt.testing import model_inputs as mi
from blt.testing.model_checks import next_targets
from blt.tokens import BPE_ID, EOS_ID, OFFSET, PAD_ID, encode

TEXTS = ["The cat sat on the mat. A dog ran\n", "Once upon a time, \u00fcber", "ab"]
TRUNK = {"d_global": 32, "global_layers": 1, "global_heads": 2, "global_ffn": 64}
FAMILIES = [("blt", "space"), ("blt", "strided"), ("blt", "bpe"), ("byte", "space"), ("byte", "bpe"), ("bpe_token", "bpe")]


def cfg(seq_len: int):
    return types.SimpleNamespace(data=types.SimpleNamespace(seq_len=seq_len), model=types.SimpleNamespace(kind="fake"))


_BUILT: dict = {}


def build(kind: str, patcher_kind: str, registry):
    if (kind, patcher_kind) not in _BUILT:
        model_table = {**mi.SMALL_MODEL, "kind": kind} if kind == "blt" else {"kind": kind, **TRUNK}
        data = {"model": model_table, "encoder": mi.PARTNERS["encoder"], "decoder": mi.PARTNERS["decoder"],
                "patcher": {"kind": patcher_kind}}
        patcher = registry.build_patcher({"kind": patcher_kind})
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = blt.build_model(data, registry=registry, patcher=patcher).eval()
        _BUILT[kind, patcher_kind] = (patcher, model)
    return _BUILT[kind, patcher_kind]


@pytest.mark.parametrize("kind,patcher_kind", FAMILIES)
def test_target_nats_sum_to_the_loss(kind, patcher_kind, registry):
    patcher, model = build(kind, patcher_kind, registry)
    tokens = mi.padded([mi.prepare_stream(patcher, encode(t).tolist()) for t in TEXTS], [PAD_ID, EOS_ID, PAD_ID])
    lengths, targets = mi.model_patches(patcher, tokens), next_targets(tokens)
    with torch.no_grad():
        ce, _n = model(tokens, lengths, targets)
        nats = model.target_nats(tokens, lengths, targets)
    assert nats.shape == targets.shape and nats.dtype == torch.float32
    assert torch.allclose(nats.sum(), ce, rtol=1e-5)
    assert (nats[targets == PAD_ID] == 0).all()
    assert (nats >= 0).all()


@settings(max_examples=10)
@given(mi.ragged_batches())
def test_target_nats_on_ragged_batches(batch):
    """The BPE-token credit map on any ragged batch: the sum is the loss, nothing lands on a pad target."""
    reg = blt.make_registry(autoload=False)
    for kind in ("bpe_token", "blt"):
        patcher, model = build(kind, "bpe", reg)
        rows, pads = batch
        tokens = mi.padded([mi.prepare_stream(patcher, r) for r in rows], pads)
        lengths, targets = mi.model_patches(patcher, tokens), next_targets(tokens)
        with torch.no_grad():
            ce, _ = model(tokens, lengths, targets)
            nats = model.target_nats(tokens, lengths, targets)
        assert torch.allclose(nats.sum(), ce, rtol=1e-5, atol=1e-4)
        assert (nats[targets == PAD_ID] == 0).all()


def test_bpe_token_losses_are_credited_to_the_last_byte_of_each_token(registry):
    patcher, model = build("bpe_token", "bpe", registry)
    row = patcher.prepare_document(encode("The cat sat on the mat."))[None]
    tokens, targets = row[:, :-1], row[:, 1:]
    lengths = mi.model_patches(patcher, tokens)
    with torch.no_grad():
        nats = model.target_nats(tokens, lengths, targets)[0]
        greedy = model.target_greedy(tokens, lengths, targets)[0]
        ids, _ = model.token_ids(row, lengths)
        logits = model.logits(ids[:, :-1])[0].float()
    token_nats = torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="none")
    argmax_ok = logits.argmax(-1) == ids[0, 1:]
    # a whole delimited document: the tokens are BOS, one per piece, EOS; a piece ends right before its delimiter
    ends = [p - 1 for p in range(1, row.shape[1]) if int(row[0, p]) == BPE_ID] + [row.shape[1] - 1]
    assert len(ends) == len(token_nats)
    for k, pos in enumerate(ends):
        assert math.isclose(float(nats[pos - 1]), float(token_nats[k]), rel_tol=1e-5, abs_tol=1e-6)
        assert bool(greedy[pos - 1]) == bool(argmax_ok[k])
    others = torch.ones_like(nats, dtype=torch.bool)
    others[[p - 1 for p in ends]] = False
    assert (nats[others] == 0).all() and greedy[others].all()


class ContextLength(torch.nn.Module):
    """A fake model whose nats at target index t of a row are t + 1: the scores reveal the window layout."""

    def target_nats(self, tokens, lengths, targets):
        B, N = targets.shape
        nats = torch.arange(1, N + 1, dtype=torch.float32).expand(B, N).clone()
        return torch.where(targets == PAD_ID, torch.zeros_like(nats), nats)

    def forward(self, tokens, lengths, targets=None):
        return self.target_nats(tokens, lengths, targets).sum(), int((targets != PAD_ID).sum())


def test_rolling_windows_by_hand(registry):
    scorer = Scorer(cfg(4), registry.build_patcher({"kind": "byte"}), ContextLength())
    (nats,) = scorer.document_nats([b"abcdefghij"])
    # targets 1..10 of BOS a..j EOS: windows [1,5) from 0, [5,9) from 4, [9,11) from 6 (as much context as fits)
    assert nats.tolist() == [1, 2, 3, 4, 1, 2, 3, 4, 3, 4]
    (stream,) = scorer.stream_nats([b"abcdefghij"])
    assert stream.tolist() == [1, 2, 3, 4, 1, 2, 3, 4, 2, 3, 4]  # EOS scored: [9, 12) from 7


@given(n=st.integers(1, 40), seq_len=st.integers(1, 9))
def test_rolling_windows_are_lm_eval_windows(n, seq_len):
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    reg = blt.make_registry(autoload=False)
    scorer = Scorer(cfg(seq_len), reg.build_patcher({"kind": "byte"}), ContextLength())
    (nats,) = scorer.document_nats([bytes(range(65, 65 + n))])
    expected = []
    for context, pred in map(make_disjoint_window, get_rolling_token_windows(list(range(n)), -1, seq_len, 1)):
        # the model reads context + pred[:-1]; pred[k] is predicted at row index len(context) - 1 + k
        expected += [len(context) + k for k in range(len(pred))]
    assert nats.tolist() == expected


class NextByte(torch.nn.Module):
    """A fake model that predicts token id + 1 with logit 10 (all other logits 0): log-probabilities by hand."""

    def forward(self, tokens, lengths, targets=None):
        logits = torch.zeros(*tokens.shape, 260)
        logits.scatter_(2, (tokens + 1).clamp(max=259)[..., None], 10.0)
        if targets is None:
            return logits
        nats = self.target_nats(tokens, lengths, targets)
        return nats.sum(), int((targets != PAD_ID).sum())

    def target_nats(self, tokens, lengths, targets):
        logits = self.forward(tokens, lengths)
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=PAD_ID,
                                                 reduction="none").view(targets.shape)


def test_loglikelihood_by_hand(registry):
    scorer = Scorer(cfg(3), registry.build_patcher({"kind": "byte"}), NextByte())
    z = math.log(math.exp(10) + 259)
    right, wrong = 10 - z, -z
    out = scorer.loglikelihood([(b"a", b"bcd"), (b"a", b"bce"), (b"", b"ab"), (b"xyz", b"")])
    assert math.isclose(out[0][0], 3 * right, abs_tol=1e-5) and out[0][1] is True
    assert math.isclose(out[1][0], 2 * right + wrong, abs_tol=1e-5) and out[1][1] is False
    assert math.isclose(out[2][0], wrong + right, abs_tol=1e-5) and out[2][1] is False  # BOS predicts EOS, not "a"
    assert out[3] == (0.0, True)
    (doc,) = scorer.document_nats([b"abcz"])
    assert np.allclose(doc, [-wrong, -right, -right, -wrong], atol=1e-5)


@pytest.mark.parametrize("kind", ["blt", "byte"])
def test_document_nats_against_direct_forward(kind, registry):
    """Byte patches (BLT) or none (byte baseline): each lm-eval window computed on its own must agree."""
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    patcher, model = build(kind, "byte", registry)
    text = b"In the beginning God created the heaven and the earth."
    scorer = Scorer(cfg(16), patcher, model)
    (nats,) = scorer.document_nats([text], batch_size=3)
    body = encode(text, eos=False)[1:].tolist()
    expected = []
    for context, pred in map(make_disjoint_window, get_rolling_token_windows(body, 1, 16, 1)):
        row = torch.tensor([context + pred[:-1]])
        with torch.no_grad():
            logp = torch.log_softmax(model(row, mi.model_patches(patcher, row))[0], -1)
        expected += [-float(logp[len(context) - 1 + k, t]) for k, t in enumerate(pred)]
    assert np.allclose(nats, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind,patcher_kind", [("blt", "space"), ("blt", "bpe"), ("byte", "space"), ("bpe_token", "bpe")])
def test_one_document_agrees_with_evaluate(kind, patcher_kind, registry, tmp_path):
    from blt.data.store import Store, build_store
    from blt.train.evaluate import evaluate

    patcher, model = build(kind, patcher_kind, registry)
    text = "The cat sat on the mat, \u00fcber alles.\n".encode()
    prepare = getattr(patcher, "prepare_document", None)
    store = Store(build_store([("d", text)], tmp_path / "store", patcher, {"source": "t", "split": "heldout"}, prepare), patcher)
    result = evaluate(model, store, seq_len=64, batch_size=1, max_bytes=None, device=torch.device("cpu"), dtype="fp32")
    scorer = Scorer(cfg(64), patcher, model)
    (stream,) = scorer.stream_nats([text])
    (doc,) = scorer.document_nats([text])
    assert result["bytes"] == len(text) + 1  # the bytes and EOS; delimiters are not bytes
    assert math.isclose(stream.sum(), result["ce_nats"], rel_tol=1e-5)
    assert len(doc) == len(text)
    assert math.isclose(doc.sum(), stream.sum() - stream[-1], rel_tol=1e-6)  # everything but the EOS term


@pytest.mark.parametrize("kind,patcher_kind", [("blt", "space"), ("blt", "bpe"), ("bpe_token", "bpe")])
def test_loglikelihood_matches_document_nats(kind, patcher_kind, registry):
    patcher, model = build(kind, patcher_kind, registry)
    scorer = Scorer(cfg(64), patcher, model)
    pairs = [(b"The cat sat", b" on the mat."), (b"", b"Once upon"), ("Stra\u00dfe".encode(), " und Weg".encode())]
    out = scorer.loglikelihood(pairs, batch_size=2)
    docs = scorer.document_nats([c + x for c, x in pairs])
    for (context, _), (logp, greedy), nats in zip(pairs, out, docs):
        assert math.isclose(logp, -nats[len(context):].sum(), rel_tol=1e-5)
        assert isinstance(greedy, bool)
    assert scorer.continuation_nats(pairs) == pytest.approx([-lp for lp, _ in out], rel=1e-5)


def test_deterministic_and_batch_size_independent(registry):
    patcher, model = build("blt", "space", registry)
    scorer = Scorer(cfg(16), patcher, model)
    docs = [t.encode() for t in TEXTS]
    a, b = scorer.document_nats(docs), scorer.document_nats(docs)
    c = scorer.document_nats(docs, batch_size=1)
    calls = []
    scorer.document_nats(docs, batch_size=2, progress=lambda done, total: calls.append((done, total)))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert all(np.allclose(x, y, rtol=1e-4, atol=1e-5) for x, y in zip(a, c))
    assert calls[-1][0] == calls[-1][1] and len(calls) == math.ceil(calls[-1][1] / 2)


def test_credit_map_sends_delimiters_to_the_byte_before():
    tokens = np.array([1, OFFSET + 97, OFFSET + 98, BPE_ID, OFFSET + 99, BPE_ID, EOS_ID])
    assert credit_map(tokens).tolist() == [-1, 0, 1, 1, 2, 2, -1]


def test_a_model_without_target_nats_is_refused(registry):
    class NoScores(torch.nn.Module):
        def forward(self, tokens, lengths, targets=None):
            raise AssertionError

    with pytest.raises(InputError, match="'fake' has no target_nats"):
        Scorer(cfg(8), registry.build_patcher({"kind": "byte"}), NoScores())


@pytest.mark.parametrize("kind", ["blt", "byte", "bpe_token"])
def test_target_nats_contract(kind, registry):
    from blt.testing.model_contracts import run_model_contracts

    (result,) = run_model_contracts(kind, registry=registry, only=["target_nats"])
    assert result.name == "target_nats" and result.passed and not result.skipped, result.detail
