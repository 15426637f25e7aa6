"""Data pipeline: sources, stores, the packing contract, shuffling, resumable state, rank slices."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import blt
from blt.data import DataConfig, DataError, TrainStream, eval_batches, iter_documents, open_store
from blt.data.packing import pack_row, trim_front
from blt.tokens import encode


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BLT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture()
def space(registry):
    config = registry.config("patchers", {"kind": "space"})
    return registry.build_patcher(config), config


def _files(tmp_path):
    d = tmp_path / "corpus"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("hello world, a first document.\nsecond line\n")
    (d / "sub" / "b.txt").write_text("   \n\t\n")  # whitespace only: skipped
    with gzip.open(d / "c.jsonl.gz", "wt") as fh:
        for i in range(30):
            fh.write(json.dumps({"body": f"document number {i} " * (i + 1)}) + "\n")
    (d / ".hidden.txt").write_text("never read")
    return d


def test_sources_text_jsonl_directories_and_split(tmp_path):
    d = _files(tmp_path)
    cfg = DataConfig(source=str(d), text_field="body")
    train = list(iter_documents(cfg, "train"))
    held = list(iter_documents(cfg, "heldout"))
    ids = [i for i, _ in train + held]
    assert len(ids) == len(set(ids)) == 31  # 1 text + 30 jsonl; whitespace-only and hidden files skipped
    assert all(b"never read" not in t for _, t in train + held)
    # The split hashes ids relative to the source entry: fixed whatever the temporary directory is called.
    assert sorted(int(i.rsplit(":", 1)[1]) for i, _ in held) == [2, 3, 4, 16]
    explicit = DataConfig(source=str(d / "a.txt"), heldout=[str(d / "c.jsonl.gz")], text_field="body")
    assert [i for i, _ in iter_documents(explicit, "train")] == [f"{d / 'a.txt'}#0"]
    assert len(list(iter_documents(explicit, "heldout"))) == 30


def test_split_survives_moving_the_corpus(tmp_path):
    d = _files(tmp_path)
    before = [i.rsplit("/", 1)[1] for i, _ in iter_documents(DataConfig(source=str(d), text_field="body"), "heldout")]
    moved = d.rename(tmp_path / "elsewhere")
    after = [i.rsplit("/", 1)[1] for i, _ in iter_documents(DataConfig(source=str(moved), text_field="body"), "heldout")]
    assert before == after and before
    single = [i for i, _ in iter_documents(DataConfig(source=str(moved / "c.jsonl.gz"), text_field="body"), "heldout")]
    assert [i.rsplit("/", 1)[1] for i in single] == before  # a file named directly: keyed by its file name


def test_bad_sources_are_clear_errors(tmp_path, space):
    patcher, pc = space
    with pytest.raises(DataError, match="does not exist"):
        list(iter_documents(DataConfig(source=str(tmp_path / "nope.txt")), "train"))
    (tmp_path / "blank.txt").write_text("  \n \n")
    with pytest.raises(DataError, match="no text"):
        open_store(DataConfig(source=str(tmp_path / "blank.txt"), heldout=str(tmp_path / "blank.txt")), "train", patcher, pc)
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"other": 1}\n')
    with pytest.raises(DataError, match="text_field"):
        list(iter_documents(DataConfig(source=str(tmp_path / "bad.jsonl")), "train"))


def test_store_holds_each_document_patched_alone(tmp_path, space):
    patcher, pc = space
    cfg = DataConfig(source="builtin", builtin_sources=["chinese"], max_documents=5, cache_dir=str(tmp_path / "c"))
    store = open_store(cfg, "train", patcher, pc)
    docs = list(iter_documents(cfg, "train"))
    assert store.n_docs == 5
    for i, (_, text) in enumerate(docs):
        ids = encode(text)
        assert torch.equal(torch.from_numpy(store.doc_tokens(i).astype(np.int64)), ids)
        assert np.array_equal(store.doc_lengths(i), patcher.patch(ids).lengths.numpy())
    again = open_store(cfg, "train", patcher, pc)  # cached: same directory, not rebuilt
    assert again.path == store.path and len(list((tmp_path / "c").iterdir())) == 1
    online = open_store(DataConfig(source="builtin", builtin_sources=["chinese"], max_documents=5,
                                   cache_dir=str(tmp_path / "c"), patches="online"), "train", patcher, pc)
    assert not online.patched and np.array_equal(online.doc_lengths(3), store.doc_lengths(3))


@given(doc_lengths=st.lists(st.lists(st.integers(1, 6), min_size=1, max_size=8), min_size=1, max_size=6),
       offset_frac=st.floats(0, 0.999), seq_len=st.integers(2, 40))
def test_pack_row_contract(doc_lengths, offset_frac, seq_len):
    """Rows sum to seq_len + 1, start with a patch of 1, and keep every document boundary a patch boundary."""
    segments, boundaries, pos = [], set(), 0
    for k, lengths in enumerate(doc_lengths):
        lengths = np.array(lengths)
        n = int(lengths.sum())
        off = int(offset_frac * n) if k == 0 else 0
        toks = np.arange(pos, pos + n) % 200 + 4
        segments.append((toks[off:], trim_front(lengths, off)))
        pos += n
        boundaries.add(sum(len(t) for t, _ in segments))
    tokens, lengths = pack_row(segments, seq_len + 1)
    assert len(tokens) == seq_len + 1 and int(lengths.sum()) == seq_len + 1
    assert lengths[0] == 1 and (lengths > 0).all()
    starts = set(np.cumsum(lengths)[:-1].tolist())
    real = sum(len(t) for t, _ in segments)
    for b in boundaries:
        if b < min(real, seq_len + 1):
            assert b in starts  # a document never shares a patch with the next one
    if real < seq_len + 1:
        assert (tokens[real:] == 0).all()


def test_rows_match_model_contract_and_cover_every_target_once(space):
    patcher, pc = space
    cfg = DataConfig(source="builtin", builtin_sources=["kjv"], max_documents=6, seq_len=50)
    store = open_store(cfg, "train", patcher, pc)
    stream = TrainStream(store, 50, seed=3)
    flat = np.concatenate([store.doc_tokens(int(i)) for i in stream.order(0)])
    rows = [stream.next_row() for _ in range(10)]
    for r, (tokens, lengths) in enumerate(rows):
        assert lengths.sum() == 51 and lengths[0] == 1
        assert np.array_equal(tokens, flat[r * 50 : r * 50 + 51])  # row r+1 starts where row r's inputs end
    b = TrainStream(store, 50, seed=3).next_batch(4)
    assert b.tokens.shape == (4, 50) and torch.equal(b.tokens[:, 1:], b.targets[:, :-1])
    assert (b.patch_lengths.sum(1) == 51).all()


def test_shuffle_is_seeded_and_state_resumes_exactly(space):
    patcher, pc = space
    store = open_store(DataConfig(source="builtin", builtin_sources=["kjv"], max_documents=3), "train", patcher, pc)
    a, b, c = TrainStream(store, 64, 0), TrainStream(store, 64, 0), TrainStream(store, 64, 1)
    assert np.array_equal(a.order(0), b.order(0)) and not np.array_equal(a.order(0), c.order(0))
    big = TrainStream(open_store(DataConfig(source="builtin", max_documents=50), "train", patcher, pc), 64, 0)
    assert not np.array_equal(big.order(0), big.order(1))  # a new order each epoch
    for _ in range(7):
        a.next_batch(4)
    state = json.loads(json.dumps(a.state_dict()))  # small and JSON-able
    expected = [a.next_batch(4) for _ in range(60)]  # crosses an epoch boundary
    assert a.state_dict()["epoch"] >= 1
    b.load_state_dict(state)
    for want in expected:
        got = b.next_batch(4)
        assert torch.equal(got.tokens, want.tokens) and torch.equal(got.patch_lengths, want.patch_lengths)


def test_rank_slices_partition_the_global_batch(space):
    patcher, pc = space
    store = open_store(DataConfig(source="builtin", builtin_sources=["kjv"], max_documents=4), "train", patcher, pc)
    whole = TrainStream(store, 32, 0).next_batch(4)
    parts = [TrainStream(store, 32, 0).next_batch(4, rank=r, world=2) for r in range(2)]
    assert torch.equal(torch.cat([p.tokens for p in parts]), whole.tokens)
    assert all(p.global_targets == whole.n_targets for p in parts)
    with pytest.raises(DataError, match="multiple of 3"):
        TrainStream(store, 32, 0).next_batch(4, rank=0, world=3)


def test_eval_batches_cover_heldout_once_with_padding(space):
    patcher, pc = space
    cfg = DataConfig(source="builtin", builtin_sources=["python"], max_documents=3)
    store = open_store(cfg, "heldout", patcher, pc)
    batches = list(eval_batches(store, 64, 4))
    assert sum(b.n_targets for b in batches) == store.n_tokens - 1  # every position but the first is a target
    assert all((b.patch_lengths.sum(1) == 65).all() and (b.patch_lengths[:, 0] == 1).all() for b in batches)
    limited = list(eval_batches(store, 64, 4, max_bytes=200))
    assert sum(b.n_targets for b in limited) == 256  # whole rows until at least 200 bytes


def test_builtin_heldout_split_is_the_corpus_split(space):
    patcher, pc = space
    cfg = DataConfig(max_documents=3)
    assert [i for i, _ in iter_documents(cfg, "heldout")] == [d.id for d in blt.corpus.load_builtin_corpus("heldout")[:3]]
