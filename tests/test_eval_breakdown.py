"""Unicode scripts by code point, BPB by script and source, and the documents evaluations run on."""

from __future__ import annotations

import math

import numpy as np
import pytest

from blt.data.sources import DataError
from blt.evaluation.breakdown import breakdown, breakdown_from_nats
from blt.evaluation.documents import file_documents, heldout_documents, limit_bytes
from blt.evaluation.scripts import SCRIPTS, byte_scripts, script_of


def test_script_of_known_characters():
    cases = {"a": "Latin", "Z": "Latin", "é": "Latin", "ß": "Latin", "ẞ": "Latin", "×": "other", "ж": "Cyrillic",
             "Ё": "Cyrillic", "λ": "Greek", "ά": "Greek", "م": "Arabic", "東": "Han", "々": "Han", "𠀀": "Han",
             "か": "Kana", "カ": "Kana", "ｶ": "Kana", "한": "Hangul", "ᄀ": "Hangul", " ": "other", "1": "other",
             "。": "other", "—": "other", "अ": "other", "\udcff": "other"}
    assert {ch: script_of(ch) for ch in cases} == cases


def test_bytes_take_their_characters_script():
    data = "aé東 ж".encode() + b"\xff"
    names = [SCRIPTS[i] for i in byte_scripts(data)]
    assert names == ["Latin", "Latin", "Latin", "Han", "Han", "Han", "other", "Cyrillic", "Cyrillic", "other"]


def test_breakdown_by_hand():
    docs = [("d1", "kjv", "ab東".encode()), ("d2", "chinese", "東 ".encode())]
    nats = [np.array([1.0, 1.0, 2.0, 2.0, 2.0]), np.array([3.0, 3.0, 3.0, 0.5])]
    out = breakdown_from_nats(docs, nats)
    ln2 = math.log(2)
    assert out["by_script"] == {"Latin": {"bpb": 2 / ln2 / 2, "bytes": 2}, "Han": {"bpb": 15 / ln2 / 6, "bytes": 6},
                                "other": {"bpb": 0.5 / ln2, "bytes": 1}}
    assert out["by_source"] == {"chinese": {"bpb": 9.5 / ln2 / 4, "bytes": 4}, "kjv": {"bpb": 8 / ln2 / 5, "bytes": 5}}
    with pytest.raises(ValueError):
        breakdown_from_nats(docs, nats[::-1])


class FixedScorer:
    def document_nats(self, docs, *, batch_size=8, progress=None):
        return [np.arange(len(d), dtype=float) for d in docs]


def test_breakdown_with_a_scorer_and_max_bytes():
    docs = [("a", "x", b"abc"), ("b", "y", "де".encode())]
    out = breakdown(FixedScorer(), docs, max_bytes=5)  # "д" fits, "е" is cut whole
    assert out["by_source"]["y"]["bytes"] == 2 and out["by_script"]["Cyrillic"]["bytes"] == 2
    assert sum(v["bytes"] for v in out["by_script"].values()) == 5


def test_limit_bytes_cuts_at_a_character_boundary():
    docs = [("a", "s", b"abc"), ("b", "s", "東京".encode()), ("c", "s", b"zz")]
    assert limit_bytes(docs, 7) == [("a", "s", b"abc"), ("b", "s", "東".encode())]
    assert limit_bytes(docs, None) == docs


def test_file_documents_name_their_source(tmp_path):
    (tmp_path / "corpus" / "sub").mkdir(parents=True)
    (tmp_path / "corpus" / "one.txt").write_text("first document\n")
    (tmp_path / "corpus" / "sub" / "two.jsonl").write_text('{"text": "a"}\n{"text": "  "}\n{"text": "b c"}\n')
    docs = file_documents([str(tmp_path / "corpus")])
    assert [(source, data) for _, source, data in docs] == [("one.txt", b"first document\n"), ("sub/two.jsonl", b"a"),
                                                            ("sub/two.jsonl", b"b c")]
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(DataError, match="no text to evaluate on"):
        file_documents([str(tmp_path / "empty.txt")])


def test_heldout_documents_of_the_builtin_corpus():
    from blt.experiment import load_experiment

    config, _ = load_experiment({"data": {"builtin_sources": ["kjv", "chinese"], "max_documents": 30}})
    docs = heldout_documents(config, max_bytes=200_000)
    assert {source for _, source, _ in docs} == {"kjv", "chinese"}
    assert sum(len(d) for _, _, d in docs) <= 200_000
