"""Corpus readers: Parquet, JSON Lines (plain, gzip, zstd), Hugging Face ``save_to_disk``
directories. Each yields the records it holds, in order, with stable ids; the held-out rule is the
hash of the id relative to the source entry (or the dataset's own split); bad input is one
DataError naming the file."""

from __future__ import annotations

import gzip
import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from blt.data import DataConfig, DataError, iter_documents, open_store
from blt.data.sources import expand_units, held_out, iter_file_documents, source_fingerprint

TEXTS = [f"document {i}: " + "words and more words " * (i % 7 + 1) for i in range(60)]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BLT_CACHE_DIR", str(tmp_path / "cache"))


def _parquet(path, texts, row_group_size=16, **extra):
    pq.write_table(pa.table({"text": texts, "n": list(range(len(texts))), **extra}), path, row_group_size=row_group_size)
    return path


def _jsonl_lines(texts, field="text"):
    return "".join(json.dumps({field: t, "i": i}) + "\n" for i, t in enumerate(texts)).encode()


def _zst(path, texts, frames=3):
    """Several concatenated zstd frames, as shards joined with `cat` are."""
    step = max(1, len(texts) // frames)
    with open(path, "wb") as fh:
        for start in range(0, len(texts), step):
            fh.write(zstandard.ZstdCompressor(level=3).compress(_jsonl_lines(texts[start : start + step])))
    return path


def _names(docs):
    return [doc_id.rsplit("/", 1)[1] for doc_id, _ in docs]


@settings(max_examples=15)
@given(texts=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=150), group=st.integers(1, 70))
def test_parquet_yields_every_row_in_order(tmp_path_factory, texts, group):
    path = _parquet(tmp_path_factory.mktemp("pq") / "shard.parquet", texts, row_group_size=group)
    docs = list(iter_file_documents(str(path)))
    assert [d for _, d in docs] == [t.encode("utf-8", errors="surrogateescape") for t in texts]
    assert _names(docs) == [f"shard.parquet:{r}" for r in range(len(texts))]


def test_jsonl_plain_gzip_and_zstd_read_alike(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(_jsonl_lines(TEXTS))
    with gzip.open(tmp_path / "b.jsonl.gz", "wb") as fh:
        fh.write(_jsonl_lines(TEXTS))
    _zst(tmp_path / "c.jsonl.zst", TEXTS)
    read = {name: list(iter_file_documents(str(tmp_path / name))) for name in ("a.jsonl", "b.jsonl.gz", "c.jsonl.zst")}
    assert [d for _, d in read["a.jsonl"]] == [t.encode() for t in TEXTS]
    for name, docs in read.items():
        assert [d for _, d in docs] == [d for _, d in read["a.jsonl"]]
        assert _names(docs) == [f"{name}:{line}" for line in range(1, len(TEXTS) + 1)]


def test_formats_by_name_and_by_config(tmp_path):
    d = tmp_path / "corpus"
    (d / "part").mkdir(parents=True)
    _parquet(d / "part" / "x.parquet", TEXTS[:5])
    (d / "part" / "_SUCCESS").write_bytes(b"")
    _parquet(d / "part" / "_common_metadata", TEXTS[:1])  # a Spark marker: skipped, not read as text
    _zst(d / "y.jsonl.zst", TEXTS[:4])
    (d / "z.txt").write_text("plain text")
    assert [(u.name, u.fmt) for u in expand_units(str(d))] == [("part/x.parquet", "parquet"), ("y.jsonl.zst", "jsonl"),
                                                               ("z.txt", "text")]
    _parquet(tmp_path / "rows.bin", TEXTS[:3])
    assert [doc for _, doc in iter_documents(DataConfig(source=str(tmp_path / "rows.bin"), format="parquet",
                                                         heldout=str(tmp_path / "rows.bin")), "train")] == \
           [t.encode() for t in TEXTS[:3]]


def test_heldout_split_hashes_the_name_inside_the_source(tmp_path):
    d = tmp_path / "corpus"
    (d / "sub").mkdir(parents=True)
    _parquet(d / "sub" / "p.parquet", TEXTS)
    _zst(d / "z.jsonl.zst", TEXTS)
    cfg = DataConfig(source=str(d))
    train, held = list(iter_documents(cfg, "train")), list(iter_documents(cfg, "heldout"))
    keys = [f"sub/p.parquet:{r}" for r in range(60)] + [f"z.jsonl.zst:{n}" for n in range(1, 61)]
    assert [k for k in keys if held_out(k)] == [doc_id.split("corpus/", 1)[1] for doc_id, _ in held]
    assert [k for k in keys if not held_out(k)] == [doc_id.split("corpus/", 1)[1] for doc_id, _ in train]
    assert 0 < len(held) < len(train)
    moved = d.rename(tmp_path / "moved")
    assert _names(iter_documents(DataConfig(source=str(moved)), "heldout")) == _names(held)


def _hf_dataset(texts):
    datasets = pytest.importorskip("datasets")
    return datasets, datasets.Dataset.from_dict({"text": texts, "n": list(range(len(texts)))})


def test_hf_save_to_disk_dataset_reads_its_shards_in_order(tmp_path):
    datasets, ds = _hf_dataset(TEXTS)
    ds.save_to_disk(str(tmp_path / "ds"), num_shards=3)
    docs = list(iter_file_documents(str(tmp_path / "ds")))
    assert [d.decode() for _, d in docs] == datasets.load_from_disk(str(tmp_path / "ds"))["text"]
    assert _names(docs)[:2] == ["data-00000-of-00003.arrow:0", "data-00000-of-00003.arrow:1"]
    # no held-out split of its own: the hash rule over the shard name and row
    held = list(iter_documents(DataConfig(source=str(tmp_path / "ds")), "heldout"))
    assert _names(held) == [n for n in _names(docs) if held_out(n)] and held
    # inside a walked directory, the dataset is one unit named by its path there
    (tmp_path / "top").mkdir()
    shutil.move(str(tmp_path / "ds"), str(tmp_path / "top" / "ds"))
    (tmp_path / "top" / "notes.txt").write_text("a text file next to it")
    units = expand_units(str(tmp_path / "top"))
    assert [u.name for u in units] == [f"ds/data-0000{i}-of-00003.arrow" for i in range(3)] + ["notes.txt"]


def test_hf_dataset_dict_uses_its_splits(tmp_path):
    datasets, ds = _hf_dataset(TEXTS)
    held = datasets.Dataset.from_dict({"text": ["held out one", "held out two"], "n": [0, 1]})
    datasets.DatasetDict({"train": ds, "test": held}).save_to_disk(str(tmp_path / "dd"))
    cfg = DataConfig(source=str(tmp_path / "dd"))
    assert [d.decode() for _, d in iter_documents(cfg, "train")] == TEXTS  # every train row, no hash split
    assert [d for _, d in iter_documents(cfg, "heldout")] == [b"held out one", b"held out two"]
    assert _names(iter_documents(cfg, "heldout")) == ["data-00000-of-00001.arrow:0", "data-00000-of-00001.arrow:1"]
    # validation is preferred over test; splits other than these are not read
    extra = datasets.Dataset.from_dict({"text": ["validation row"], "n": [0]})
    datasets.DatasetDict({"train": ds, "test": held, "validation": extra, "other": held}).save_to_disk(str(tmp_path / "dv"))
    assert [d for _, d in iter_documents(DataConfig(source=str(tmp_path / "dv")), "heldout")] == [b"validation row"]
    assert len(list(iter_file_documents(str(tmp_path / "dv")))) == 61
    # a DatasetDict without a held-out split: its train rows are split by the hash rule
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "only"))
    names = _names(iter_documents(DataConfig(source=str(tmp_path / "only")), "heldout"))
    assert names == [f"data-00000-of-00001.arrow:{r}" for r in range(60) if held_out(f"train/data-00000-of-00001.arrow:{r}")]


def test_bad_corpora_are_one_line_errors_naming_the_file(tmp_path):
    _parquet(tmp_path / "nofield.parquet", TEXTS[:3])
    with pytest.raises(DataError, match=r"nofield\.parquet: no column 'body' \(columns: text, n\); set \[data\] text_field"):
        list(iter_file_documents(str(tmp_path / "nofield.parquet"), text_field="body"))
    with pytest.raises(DataError, match=r"column 'n' has type int64, expected strings"):
        list(iter_file_documents(str(tmp_path / "nofield.parquet"), text_field="n"))
    pq.write_table(pa.table({"text": ["ok", None]}), tmp_path / "null.parquet")
    with pytest.raises(DataError, match=r"null\.parquet: row 1 of column 'text' is null"):
        list(iter_file_documents(str(tmp_path / "null.parquet")))
    (tmp_path / "fake.parquet").write_text("not parquet at all")
    with pytest.raises(DataError, match=r"fake\.parquet: not a readable Parquet file"):
        list(iter_file_documents(str(tmp_path / "fake.parquet")))
    (tmp_path / "bad.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(b'{"text": 3}\n'))
    with pytest.raises(DataError, match=r"bad\.jsonl\.zst:1: field 'text' is int, expected a string"):
        list(iter_file_documents(str(tmp_path / "bad.jsonl.zst")))
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "a.txt").write_text("text")
    with pytest.raises(DataError, match="not a datasets save_to_disk directory"):
        list(iter_documents(DataConfig(source=str(tmp_path / "plain"), format="hf"), "train"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="contains no files"):
        list(iter_documents(DataConfig(source=str(tmp_path / "empty")), "train"))


def test_empty_corpora_fail_when_the_store_is_built(tmp_path, registry):
    pc = registry.config("patchers", {"kind": "space"})
    patcher = registry.build_patcher(pc)
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), tmp_path / "none.parquet")
    cfg = DataConfig(source=str(tmp_path / "none.parquet"), heldout=str(tmp_path / "none.parquet"))
    with pytest.raises(DataError, match="none.parquet.*has no text.*check \\[data\\] source and text_field"):
        open_store(cfg, "train", patcher, pc)
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"text": ["  ", "\n"]}).save_to_disk(str(tmp_path / "blank"))
    with pytest.raises(DataError, match="has no text"):
        open_store(DataConfig(source=str(tmp_path / "blank"), heldout=str(tmp_path / "blank")), "train", patcher, pc)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}))
    (tmp_path / "broken" / "dataset_info.json").write_text("{}")
    with pytest.raises(DataError, match="listed in .*state.json but missing"):
        list(iter_documents(DataConfig(source=str(tmp_path / "broken")), "train"))


def test_fingerprint_follows_the_files(tmp_path):
    path = _parquet(tmp_path / "a.parquet", TEXTS)
    cfg = DataConfig(source=str(path))
    before = source_fingerprint(cfg, "train")
    assert source_fingerprint(cfg, "train") == before
    _parquet(path, TEXTS[:-1])
    assert source_fingerprint(cfg, "train") != before
