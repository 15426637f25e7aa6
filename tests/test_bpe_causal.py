"""Causal BPE: the ``bpe`` patcher's delimited stream (a delimiter after every BPE piece, predicted
by the model) is patched causally, BLT on it is a true likelihood, and BPB divides by bytes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _tiny import small_blt, tiny, write_toml
from hypothesis import given, settings
from hypothesis import strategies as st

import blt
from blt.data import DataConfig, TrainStream, eval_batches, iter_documents, open_store
from blt.generate import generate_detailed
from blt.generate.patch_starts import PatchStarts
from blt.generate.prompts import prompt_tokens
from blt.model.layout import split_first_patch
from blt.plugins.patchers.bpe import BpeConfig, BpePatcher, train_bpe_tokenizer
from blt.testing import incremental_violation
from blt.testing import strategies as bst
from blt.tokens import BOS_ID, BPE_ID, EOS_ID, OFFSET, PAD_ID, decode, encode
from blt.train.evaluate import ce_and_count, evaluate

TEXTS = ["héllo wörld, the naïve café 日本語 😀 héllo héllo"] * 20 + ["the cat and the hat in the thing"] * 20
TEXT_OR_BYTES = st.one_of(bst.utf8_texts(max_size=40), bst.english_texts(), bst.byte_strings(max_size=24))


@pytest.fixture(scope="module")
def patcher(tmp_path_factory):
    path = train_bpe_tokenizer(TEXTS, 320, tmp_path_factory.mktemp("bpe") / "tok.json")
    return BpePatcher(BpeConfig(tokenizer_path=str(path)))


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("BLT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("BLT_DISABLE_PLUGIN_AUTOLOAD", "1")


def starts_of(lengths: torch.Tensor) -> list[int]:
    ends = torch.cumsum(lengths, 0)
    return (ends - lengths)[lengths > 0].tolist()


# --- the delimited stream ---------------------------------------------------------------------

@settings(max_examples=40)
@given(data=TEXT_OR_BYTES, bos=st.booleans(), eos=st.booleans())
def test_delimited_stream_round_trips_to_the_bytes(patcher, data, bos, eos):
    raw = encode(data, bos=bos, eos=eos)
    stream = patcher.delimit(raw)
    assert decode(stream) == decode(raw)  # the delimiter is no byte
    assert torch.equal(stream[stream != BPE_ID], raw)  # dropping the delimiters gives the row back
    assert torch.equal(patcher.delimit(stream), stream)  # idempotent
    body = bytes(data, "utf-8") if isinstance(data, str) else data
    n_pieces = len(patcher.token_byte_lengths(body)) if body else 0
    assert int((stream == BPE_ID).sum()) == n_pieces  # one delimiter per piece, the last piece included
    if body:
        assert stream[-1 - int(eos)] == BPE_ID
        open_end = patcher.delimit(encode(data, bos=bos, eos=False), open_end=True)
        assert open_end[-1] != BPE_ID and int((open_end == BPE_ID).sum()) == n_pieces - 1


def test_prepare_document_delimits_every_piece_and_patches_are_pieces(patcher):
    text = "the cat and the hat, naïve café 😀"
    doc = patcher.prepare_document(encode(text))
    lengths = patcher.patch(doc).lengths
    assert torch.equal(lengths, patcher.patch_prepared(doc).lengths)  # a delimited row: the delimiter rule
    pieces, pos = [], 0
    for n in lengths.tolist():
        patch = doc[pos : pos + n].tolist()
        pos += n
        if patch[-1] == BPE_ID:
            pieces.append(bytes(t - OFFSET for t in patch[:-1]))
        else:
            assert len(patch) == 1 and patch[0] in (BOS_ID, EOS_ID)  # BOS and EOS are patches of their own
    want = patcher.token_byte_lengths(text.encode())
    assert [len(p) for p in pieces] == want and b"".join(pieces) == text.encode()


def test_raw_rows_keep_the_piece_boundaries(patcher):
    tokens = encode("the cat")
    raw = patcher.patch(tokens).lengths.tolist()
    assert raw == [1, *patcher.token_byte_lengths(b"the cat"), 1]
    with_delims = patcher.patch(patcher.prepare_document(tokens)).lengths.tolist()
    assert with_delims == [1, *(n + 1 for n in patcher.token_byte_lengths(b"the cat")), 1]


@settings(max_examples=40)
@given(data=TEXT_OR_BYTES, docs=st.integers(1, 2))
def test_patches_of_a_delimited_stream_are_prefix_stable(patcher, data, docs):
    stream = torch.cat([patcher.prepare_document(encode(data))] * docs)

    class Prepared:  # the rule the data pipeline and generation apply to the stream
        def patch(self, tokens, include_next_token=False):
            return patcher.patch_prepared(tokens, include_next_token=include_next_token)

    assert incremental_violation(Prepared(), stream) is None
    # the stepper of cached generation makes the same decisions, one token at a time
    starts = set(starts_of(patcher.patch_prepared(stream, include_next_token=True).lengths))
    stepper = PatchStarts(patcher, 1, torch.device("cpu"))
    stepped = {0} | {t + 1 for t in range(len(stream)) if stepper.step(stream[t : t + 1], t)[0]}
    assert stepped == starts


def test_stepper_applies_max_patch_length_like_patch(patcher):
    capped = BpePatcher(BpeConfig(tokenizer_path=patcher.config.tokenizer_path, max_patch_length=3))
    stream = capped.prepare_document(encode("naïve café 😀 thing"))
    starts = set(starts_of(capped.patch_prepared(stream, include_next_token=True).lengths))
    stepper = PatchStarts(capped, 1, torch.device("cpu"))
    assert {0} | {t + 1 for t in range(len(stream)) if stepper.step(stream[t : t + 1], t)[0]} == starts


# --- BLT on the delimited stream is causal -----------------------------------------------------

def blt_config(encoder: str, decoder: str) -> dict:
    return small_blt(encoder, decoder, encoder_window=6)


MODELS: dict = {}


def tiny_blt(registry, encoder="cross_attention", decoder="cross_attention"):
    if (encoder, decoder) not in MODELS:
        torch.manual_seed(0)
        MODELS[encoder, decoder] = blt.build_model(blt_config(encoder, decoder), registry=registry).eval()
    return MODELS[encoder, decoder]


def logits(model, patcher, stream: torch.Tensor) -> torch.Tensor:
    tokens = stream[None]
    lengths = split_first_patch(patcher.patch(tokens, include_next_token=True).lengths)  # patched by the patcher
    with torch.no_grad():
        return model(tokens, lengths)[0]


@pytest.mark.parametrize("encoder, decoder", [("cross_attention", "cross_attention"), ("pooling", "add")])
@settings(max_examples=12)
@given(data=st.data())
def test_blt_on_the_delimited_stream_is_causal(registry, patcher, encoder, decoder, data):
    text = data.draw(st.one_of(bst.english_texts(), bst.utf8_texts(max_size=24)), label="text")
    stream = patcher.prepare_document(encode(text))
    t = data.draw(st.integers(0, len(stream) - 2), label="t")
    # Any stream after t: new text delimited on its own (delimiting never reaches back before t+1), or
    # arbitrary tokens, delimiters and EOS anywhere, or the same stream cut short and continued.
    tail = data.draw(st.one_of(
        st.builds(lambda s: patcher.delimit(encode(s, bos=False, eos=False)).tolist(), bst.english_texts()),
        st.lists(st.sampled_from([BPE_ID, EOS_ID, 36, 105, 108, 200]), min_size=1, max_size=12),
    ), label="tail")
    edited = torch.cat([stream[: t + 1], torch.tensor(tail + [BPE_ID], dtype=torch.long)])
    model = tiny_blt(registry, encoder, decoder)
    before, after = logits(model, patcher, stream), logits(model, patcher, edited)
    torch.testing.assert_close(after[: t + 1], before[: t + 1], atol=1e-5, rtol=1e-5)


def test_raw_bpe_patches_leak_the_future(registry):
    """The reason for the delimiters: on raw rows, appending bytes moves earlier BPE boundaries
    (the contract suite's counterexample), so a BLT's logits before the edit change."""
    from blt.testing import find_incremental_counterexample

    patcher = registry.build_patcher("bpe")
    example = find_incremental_counterexample(patcher, include_next_token=True)
    assert example is not None
    full, i = example.tokens, example.prefix_len
    model = tiny_blt(registry)

    def raw_logits(tokens):
        lengths = split_first_patch(patcher.patch(tokens[None], include_next_token=True).lengths)
        with torch.no_grad():
            return model(tokens[None], lengths)[0]

    assert not torch.allclose(raw_logits(full)[: i], raw_logits(full[:i]), atol=1e-5)


# --- bits per byte divide by bytes --------------------------------------------------------------

DOCS = ["the cat and the hat in the thing", "héllo wörld, the naïve café", "日本語 😀 and the cat",
        "In the beginning the thing was the hat. " * 3, "x"]


def data_config(tmp_path, **fields):
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCS))
    return DataConfig(source=str(corpus), heldout=str(corpus), seq_len=48, batch_size=2,
                      cache_dir=str(tmp_path / "c"), **fields)


def test_store_holds_the_delimited_stream_and_n_targets_are_bytes(tmp_path, patcher):
    cfg = data_config(tmp_path)
    store = open_store(cfg, "train", patcher, patcher.config)
    assert store.meta["prepared"]
    for i, (_, text) in enumerate(iter_documents(cfg, "train")):
        doc = torch.from_numpy(store.doc_tokens(i).astype(np.int64))
        assert torch.equal(doc, patcher.prepare_document(encode(text)))
        assert np.array_equal(store.doc_lengths(i), patcher.patch_prepared(doc).lengths.numpy())
    online = open_store(data_config(tmp_path, patches="online"), "train", patcher, patcher.config)
    assert online.path != store.path and np.array_equal(online.doc_tokens(1), store.doc_tokens(1))
    assert np.array_equal(online.doc_lengths(1), store.doc_lengths(1))
    batch = TrainStream(store, 48, seed=0).next_batch(2)
    targets = batch.targets
    assert (targets == BPE_ID).any()
    want = int(((targets != PAD_ID) & (targets != BPE_ID)).sum())
    assert batch.n_targets == want == batch.global_targets < int((targets != PAD_ID).sum())


def test_old_bpe_stores_are_not_reused(patcher):
    from blt.data.loader import patcher_fingerprint

    class Undelimited:  # the patcher as it was: same config and tokenizer, no prepared stream
        config, tokenizer = patcher.config, patcher.tokenizer

        def patch(self, tokens, include_next_token=False):
            return patcher.patch(tokens, include_next_token=include_next_token)

    assert patcher_fingerprint(patcher, patcher.config) != patcher_fingerprint(Undelimited(), patcher.config)


def heldout_bytes(cfg) -> int:
    """Bytes of the held-out docs as targets: every byte plus BOS and EOS, but the very first BOS."""
    return sum(len(text) + 2 for _, text in iter_documents(cfg, "heldout")) - 1


@pytest.fixture(scope="module")
def bpe_token_model(registry, patcher):
    from blt.experiment import load_experiment

    data = {"model": {"kind": "bpe_token", "d_global": 32, "global_layers": 1, "global_heads": 2, "global_ffn": 64},
            "patcher": {"kind": "bpe", "tokenizer_path": patcher.config.tokenizer_path}, "attention": {"kind": "eager"}}
    config, reg = load_experiment(data, registry)
    torch.manual_seed(0)
    return blt.build_model(config, registry=reg).eval()


def test_bpb_of_blt_and_of_the_token_baseline_divide_by_bytes(tmp_path, registry, patcher, bpe_token_model):
    cfg = data_config(tmp_path)
    store = open_store(cfg, "heldout", patcher, patcher.config)
    want = heldout_bytes(cfg)
    model = tiny_blt(registry)
    for m in (model, bpe_token_model):
        res = evaluate(m, store, seq_len=48, batch_size=2, max_bytes=None, device=torch.device("cpu"), dtype="fp32")
        assert res["bytes"] == want
        assert res["bpb"] == pytest.approx(res["ce_nats"] / math.log(2) / want)
    # BLT's loss sums every target, delimiters included; only the count leaves them out
    for batch in eval_batches(store, 48, 2):
        with torch.no_grad():
            ce, n = ce_and_count(model, batch, torch.device("cpu"))
            full = F.cross_entropy(model(batch.tokens, batch.patch_lengths).flatten(0, 1), batch.targets.flatten(),
                                   ignore_index=PAD_ID, reduction="sum")
        assert n == batch.n_targets and float(ce) == pytest.approx(float(full), rel=1e-5)
        with torch.no_grad():
            _, n_tok = ce_and_count(bpe_token_model, batch, torch.device("cpu"))
        assert n_tok == batch.n_targets  # the same bytes, batch by batch


def test_token_baseline_reads_one_token_per_piece(patcher, bpe_token_model):
    text = "the cat and the hat"
    doc = patcher.prepare_document(encode(text))
    lengths = split_first_patch(patcher.patch(doc[None], include_next_token=False).lengths)
    ids, nbytes = bpe_token_model.token_ids(doc[None], lengths)
    pieces = patcher.tokenizer.encode(text, add_special_tokens=False).ids
    assert ids[0].tolist() == [BOS_ID, *(p + OFFSET for p in pieces), EOS_ID]  # delimiters are no tokens
    assert int(nbytes.sum()) == len(text) + 2
    # a row that starts on a delimiter keeps it as a context token of no bytes
    row = doc[4:][None] if doc[4] == BPE_ID else None
    if row is not None:
        ids, nbytes = bpe_token_model.token_ids(row, split_first_patch(patcher.patch(row).lengths))
        assert ids[0, 0] == BPE_ID and nbytes[0, 0] == 0 and BPE_ID not in ids[0, 1:].tolist()


# --- generation -------------------------------------------------------------------------------

def test_prompts_are_delimited_with_the_last_piece_open(patcher):
    (ids,) = prompt_tokens(["the cat and th"], patcher=patcher)
    assert ids == patcher.delimit(encode("the cat and th", eos=False), open_end=True).tolist()
    assert ids[-1] != BPE_ID and BPE_ID in ids
    (again,) = prompt_tokens([torch.tensor(ids)], patcher=patcher)  # token prompts: re-delimited, the same
    assert again == ids
    with pytest.raises(blt.InputError, match="context"):
        prompt_tokens(["the cat and th"], context=len(encode("the cat and th", eos=False)), patcher=patcher)


def test_cached_generation_equals_no_cache_and_strips_delimiters(registry, patcher):
    torch.manual_seed(0)
    model = blt.build_model(blt_config("cross_attention", "cross_attention"), registry=registry).eval()
    # make the untrained model emit delimiters now and then: its delimiter row points along the mean state
    states = []
    hook = model.lm_head.register_forward_hook(lambda mod, args, out: states.append(args[0].detach()))
    logits(model, patcher, patcher.prepare_document(encode("the cat and the hat in the thing " * 3)))
    hook.remove()
    h = torch.cat([s.flatten(0, -2) for s in states])
    with torch.no_grad():
        top = (h @ model.lm_head.weight.T).max(-1).values.mean()
        model.lm_head.weight[BPE_ID] = h.mean(0) / h.mean(0).norm() ** 2 * top
    prompts = ["the cat sa", "héllo"]
    runs = [generate_detailed(model, patcher, prompts, max_new_bytes=30, cache=c, stop_at_eos=False) for c in (True, False)]
    assert runs[0].new_tokens == runs[1].new_tokens
    assert sum(toks.count(BPE_ID) for toks in runs[0].new_tokens) > 0  # the model did generate delimiters
    for toks, out in zip(runs[0].new_tokens, runs[0].outputs):
        assert out == decode(toks) and len(out) == sum(t >= OFFSET for t in toks)


# --- end to end ---------------------------------------------------------------------------------

def test_blt_train_and_generate_on_bpe_patches(tmp_path, patcher, capsysbinary):
    from blt.cli.main import main

    data = tiny(patcher={"kind": "bpe", "tokenizer_path": patcher.config.tokenizer_path},
                train={"steps": 3, "eval_every": 0, "checkpoint_every": 0})
    cfg = write_toml(tmp_path / "c.toml", data)
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 0
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    assert math.isfinite(final["eval_bpb"]) and final["eval_bpb"] > 0
    capsysbinary.readouterr()
    assert main(["generate", str(tmp_path / "run"), "--prompt", "In the beginning", "--max-bytes", "8",
                 "--no-stream"]) == 0
    cached = capsysbinary.readouterr().out
    assert main(["generate", str(tmp_path / "run"), "--prompt", "In the beginning", "--max-bytes", "8",
                 "--no-stream", "--no-cache"]) == 0
    assert capsysbinary.readouterr().out == cached and cached.startswith(b"In the beginning")


def test_flops_and_patch_size_are_per_text_byte(tmp_path):
    """A delimited stream has more positions than bytes: per-byte FLOPs and the average patch are
    reported per byte of text, while the step budget is per position."""
    import blt
    from blt.experiment import load_experiment
    from blt.train.setup import build_pieces
    from blt import parallel
    from _tiny import tiny

    data = tiny(patcher={"kind": "bpe"}, data={"cache_dir": str(tmp_path / "cache")})
    config, reg = load_experiment(data, blt.make_registry(autoload=False))
    pieces = build_pieces(config, reg, parallel.init("cpu"))
    costs = pieces.costs
    assert 0.5 < costs.bytes_per_position < 0.95  # one delimiter per piece of a few bytes
    N = config.data.seq_len
    row = sum(pieces.model.flops(N, costs.avg_patch_size / costs.bytes_per_position).values())
    assert costs.forward_per_byte == pytest.approx(row / (N * costs.bytes_per_position), rel=1e-9)
    assert costs.train_per_position == pytest.approx(3 * row / N, rel=1e-9)
