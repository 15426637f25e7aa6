"""Store building in worker processes: the same bytes as building in-process (for a rule-based, a
model-based and a stream-preparing patcher), documents consumed only a bounded distance ahead of
what is written, and a resumed stream refusing a store with other contents."""

from __future__ import annotations

import json

import numpy as np
import pytest

from blt.data import DataConfig, DataError, TrainStream, open_store
from blt.data import store as store_module
from blt.data.sources import iter_documents
from blt.data.store import build_store
from blt.plugins.patchers.bpe import train_bpe_tokenizer

N_DOCS = 150


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "docs.jsonl"
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "δέλτα", "数据", "x=1;", "\n", "  "]
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(N_DOCS):
            text = " ".join(words[j] for j in rng.integers(0, len(words), size=int(rng.integers(1, 60))))
            fh.write(json.dumps({"text": f"{i} {text}"}) + "\n")
    return path


def _files(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def _patcher_spec(kind, corpus, entropy_files, tmp_path):
    if kind == "space":
        return {"kind": "space", "max_patch_length": 6}
    if kind == "entropy":  # a model-based patcher: the expensive case workers are for
        return {"kind": "entropy", "model_path": str(entropy_files["entropy"]), "threshold": 0.05, "max_patch_length": 5}
    texts = [json.loads(line)["text"] for line in corpus.read_text(encoding="utf-8").splitlines()]
    return {"kind": "bpe", "tokenizer_path": str(train_bpe_tokenizer(texts, 300, tmp_path / "tok.json"))}


@pytest.mark.parametrize("kind", ["space", "entropy", "bpe"])
def test_parallel_store_equals_serial_store_byte_for_byte(tmp_path, registry, corpus, entropy_files, kind, monkeypatch):
    pc = registry.config("patchers", _patcher_spec(kind, corpus, entropy_files, tmp_path))
    patcher = registry.build_patcher(pc)
    monkeypatch.setattr(store_module, "CHUNK_DOCS", 7)  # many chunks, more than the in-flight window
    stores = {}
    for workers in (1, 2, 3):
        cfg = DataConfig(source=str(corpus), heldout=str(corpus), cache_dir=str(tmp_path / f"w{workers}"), workers=workers)
        stores[workers] = open_store(cfg, "train", patcher, pc)
    assert stores[1].n_docs == N_DOCS and stores[1].patched
    serial = _files(stores[1].path)
    assert set(serial) == {"tokens.u16", "doc_tokens.i64", "lengths.i32", "doc_patches.i64", "meta.json"}
    for workers in (2, 3):
        assert stores[workers].path.name == stores[1].path.name  # workers is not part of the key
        assert _files(stores[workers].path) == serial
    # and the serial store is what patching each document alone gives
    doc = next(d for i, (_, d) in enumerate(iter_documents(DataConfig(source=str(corpus), heldout=str(corpus)), "train")) if i == 17)
    tokens, lengths = store_module.tokenize_document(doc, patcher, getattr(patcher, "prepare_document", None))
    assert np.array_equal(stores[1].doc_tokens(17), tokens) and np.array_equal(stores[1].doc_lengths(17), lengths)


def test_building_reads_only_a_bounded_distance_ahead(tmp_path, monkeypatch, registry):
    """Memory stays bounded: when the k-th document is written, at most a few chunks beyond it have been read."""
    monkeypatch.setattr(store_module, "CHUNK_DOCS", 5)
    monkeypatch.setattr(store_module, "PARALLEL_MIN_DOCS", 8)
    pc = registry.config("patchers", {"kind": "space"})
    patcher = registry.build_patcher(pc)
    pulled = []

    def docs():
        for i in range(400):
            pulled.append(i)
            yield f"doc{i}", f"document {i} ".encode() * 3

    ahead = []
    workers = 2
    for k, (data, tokens, _lengths) in enumerate(store_module._tokenized((d for _, d in docs()), patcher, None, workers)):
        assert data == f"document {k} ".encode() * 3
        ahead.append(len(pulled) - (k + 1))
    assert len(ahead) == 400
    bound = store_module.PARALLEL_MIN_DOCS + (2 * workers + 1) * store_module.CHUNK_DOCS
    assert max(ahead) <= bound
    assert max(ahead) > store_module.CHUNK_DOCS  # the pool really ran ahead (parallel path taken)


def test_few_documents_build_in_process(tmp_path, registry, monkeypatch):
    pc = registry.config("patchers", {"kind": "space"})
    patcher = registry.build_patcher(pc)

    def no_pool(*_a, **_k):
        raise AssertionError("a pool was started for a handful of documents")

    import concurrent.futures

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", no_pool)
    docs = [(f"d{i}", f"short document {i}".encode()) for i in range(10)]
    store = store_module.Store(build_store(iter(docs), tmp_path / "s", patcher, {"split": "train"}, workers=4))
    assert store.n_docs == 10


class _BadPatcher:
    """Returns one patch of length 1 for any document: lengths that do not cover it."""

    def patch(self, tokens, include_next_token=False):
        import torch

        return type("P", (), {"lengths": torch.ones(1, dtype=torch.long)})()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_patching_error_in_a_worker_fails_the_build_cleanly(tmp_path, workers):
    docs = [(f"d{i}", f"document {i}".encode()) for i in range(100)]
    with pytest.raises(DataError, match="patcher returned lengths summing to 1 for a document of"):
        build_store(iter(docs), tmp_path / "s", _BadPatcher(), {"split": "train"}, workers=workers)
    assert list(tmp_path.iterdir()) == []  # no store, no temporary directory left behind


def test_resume_refuses_a_store_with_other_contents(tmp_path, registry, corpus):
    pc = registry.config("patchers", {"kind": "space"})
    patcher = registry.build_patcher(pc)
    cfg = DataConfig(source=str(corpus), heldout=str(corpus), cache_dir=str(tmp_path / "c"), workers=1)
    stream = TrainStream(open_store(cfg, "train", patcher, pc), 32, seed=0)
    for _ in range(3):
        stream.next_batch(2)
    state = json.loads(json.dumps(stream.state_dict()))
    assert len(state["store"]) == 16
    again = TrainStream(open_store(cfg, "train", patcher, pc), 32, seed=0)
    again.load_state_dict(state)  # same contents: fine
    assert again.state_dict() == state
    other = corpus.parent / "other.jsonl"
    other.write_text("\n".join(corpus.read_text().splitlines()[::-1]) + "\n")  # same documents, other order
    moved = TrainStream(open_store(DataConfig(source=str(other), heldout=str(other), cache_dir=str(tmp_path / "c")),
                                   "train", patcher, pc), 32, seed=0)
    with pytest.raises(DataError, match="training data changed since this checkpoint"):
        moved.load_state_dict(state)
    legacy = {k: v for k, v in state.items() if k != "store"}  # a state from before stores had digests
    moved.load_state_dict(legacy)
    assert moved.state_dict()["doc"] == state["doc"]


def test_a_parquet_store_shards_over_ranks_and_resumes_on_another_world_size(tmp_path, registry):
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    texts = [f"row {i}: " + "some words here " * (i % 5 + 1) for i in range(80)]
    pq.write_table(pa.table({"text": texts}), tmp_path / "c.parquet", row_group_size=16)
    pc = registry.config("patchers", {"kind": "space"})
    patcher = registry.build_patcher(pc)
    store = open_store(DataConfig(source=str(tmp_path / "c.parquet"), cache_dir=str(tmp_path / "cache"), workers=2),
                       "train", patcher, pc)
    whole = TrainStream(store, 32, seed=5)
    for _ in range(3):
        whole.next_batch(4)
    state = whole.state_dict()
    want = [whole.next_batch(4) for _ in range(5)]
    ranks = [TrainStream(store, 32, seed=5) for _ in range(2)]
    for stream in ranks:
        stream.load_state_dict(state)  # a world-1 state continued on two ranks
    for batch in want:
        parts = [stream.next_batch(4, rank=r, world=2) for r, stream in enumerate(ranks)]
        assert torch.equal(torch.cat([p.tokens for p in parts]), batch.tokens)
        assert all(p.global_targets == batch.n_targets for p in parts)
    assert ranks[0].state_dict() == ranks[1].state_dict() == whole.state_dict()
