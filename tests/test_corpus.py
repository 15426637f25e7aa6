"""The built-in corpus: loads, has every source in both splits, a fixed disjoint held-out split, a valid checksum."""

from __future__ import annotations

import collections

import pytest

from blt.corpus import (
    SOURCES,
    CorpusError,
    Document,
    builtin_corpus_path,
    iter_builtin_documents,
    load_builtin_corpus,
    sample_text_path,
    verify_builtin_corpus,
)


@pytest.fixture(scope="module")
def all_docs() -> list[Document]:
    return load_builtin_corpus(split=None)


def test_corpus_file_is_shipped_and_small() -> None:
    path = builtin_corpus_path()
    assert path.is_file()
    assert path.stat().st_size <= 2_500_000


def test_checksum_verifies() -> None:
    verify_builtin_corpus()


def test_every_source_is_in_both_splits(all_docs: list[Document]) -> None:
    present = {(d.source, d.split) for d in all_docs}
    assert present == {(s, sp) for s in SOURCES for sp in ("train", "heldout")}


def test_heldout_is_disjoint_from_train_and_a_modest_fraction(all_docs: list[Document]) -> None:
    train = load_builtin_corpus("train")
    heldout = load_builtin_corpus("heldout")
    train_ids = {d.id for d in train}
    heldout_ids = {d.id for d in heldout}
    assert not train_ids & heldout_ids
    assert len(train) + len(heldout) == len(all_docs)
    assert len({d.id for d in all_docs}) == len(all_docs), "document ids must be unique"
    for source in SOURCES:
        n_all = sum(d.source == source for d in all_docs)
        n_heldout = sum(d.source == source for d in heldout)
        assert 0.05 <= n_heldout / n_all <= 0.20, (source, n_heldout, n_all)


def test_split_and_source_filters_are_respected() -> None:
    docs = load_builtin_corpus("heldout", sources=["chinese", "kjv"])
    assert docs
    assert {d.split for d in docs} == {"heldout"}
    assert {d.source for d in docs} == {"chinese", "kjv"}


def test_texts_are_nonempty_utf8(all_docs: list[Document]) -> None:
    for doc in all_docs:
        assert doc.text.strip(), doc.id
        assert doc.text.encode("utf-8").decode("utf-8") == doc.text  # no lone surrogates


def test_chinese_source_is_multibyte_cjk(all_docs: list[Document]) -> None:
    chinese = "".join(d.text for d in all_docs if d.source == "chinese")
    cjk = sum("\u4e00" <= ch <= "\u9fff" for ch in chinese)
    assert cjk > 0.5 * len(chinese)
    assert len(chinese.encode("utf-8")) > 2 * len(chinese)


def test_each_source_has_its_kind_of_text(all_docs: list[Document]) -> None:
    by_source = collections.defaultdict(str)
    for doc in all_docs:
        by_source[doc.source] += doc.text
    assert "And God said" in by_source["kjv"]
    assert "def " in by_source["python"] and "import " in by_source["python"]


def test_loading_is_deterministic(all_docs: list[Document]) -> None:
    assert load_builtin_corpus(split=None) == all_docs
    assert list(iter_builtin_documents(split=None)) == all_docs


def test_unknown_split_raises_corpus_error() -> None:
    with pytest.raises(CorpusError, match="unknown split 'test'"):
        load_builtin_corpus("test")
    with pytest.raises(CorpusError, match="unknown split"):
        iter_builtin_documents("validation")  # raised eagerly, before iteration


def test_unknown_source_raises_corpus_error() -> None:
    with pytest.raises(CorpusError, match="unknown source 'wiki'"):
        load_builtin_corpus(sources=["kjv", "wiki"])


def test_corpus_error_is_a_value_error() -> None:
    assert issubclass(CorpusError, ValueError)


def test_verify_detects_a_changed_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import blt.corpus as corpus

    damaged = tmp_path / "builtin.jsonl.gz"
    damaged.write_bytes(builtin_corpus_path().read_bytes() + b"\0")
    monkeypatch.setattr(corpus, "builtin_corpus_path", lambda: damaged)
    with pytest.raises(CorpusError, match="SHA-256"):
        corpus.verify_builtin_corpus()


def test_sample_text_mixes_prose_code_and_chinese() -> None:
    text = sample_text_path().read_text(encoding="utf-8")
    assert 500 <= len(text.encode("utf-8")) <= 2500
    assert "In the beginning" in text
    assert "def " in text
    assert any("\u4e00" <= ch <= "\u9fff" for ch in text)
