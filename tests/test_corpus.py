"""The built-in corpus: loads, has every source in both splits, a fixed disjoint held-out split, a valid checksum,
text in at least 8 Unicode scripts with several languages per script, and a build script whose HTML extraction
and selection do what the manifest says."""

from __future__ import annotations

import collections
import gzip
import hashlib
import importlib.util
import json
import pathlib
import unicodedata

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
        bytes_all = sum(len(d.text.encode()) for d in all_docs if d.source == source)
        bytes_heldout = sum(len(d.text.encode()) for d in heldout if d.source == source)
        assert 0.05 <= bytes_heldout / bytes_all <= 0.20, (source, bytes_heldout, bytes_all)
        assert bytes_heldout >= 10_000, f"{source}: {bytes_heldout} held-out bytes is too little for a per-source BPB"


def test_split_is_the_documented_hash_rule(all_docs: list[Document]) -> None:
    for doc in all_docs:
        expected = "heldout" if int(hashlib.sha256(doc.id.encode()).hexdigest(), 16) % 10 == 0 else "train"
        assert doc.split == expected, doc.id


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


# --- scripts and languages --------------------------------------------------------------------------------------

def _script_of(ch: str) -> str | None:
    """The script of a letter from its Unicode character name (an oracle independent of the corpus fields)."""
    if not ch.isalpha():
        return None
    first = unicodedata.name(ch, "?").split()[0]
    return {"CJK": "Han", "HIRAGANA": "Kana", "KATAKANA": "Kana", "KATAKANA-HIRAGANA": "Kana"}.get(
        first, "Hangul" if first.startswith("HANGUL") else first.title())


def test_records_carry_language_and_script(all_docs: list[Document]) -> None:
    for doc in all_docs:
        assert doc.language and doc.script, doc.id
    assert {d.language for d in all_docs if d.source == "kjv"} == {"en"}
    assert {d.script for d in all_docs if d.source == "chinese"} == {"Han"}


def test_each_source_is_written_in_its_declared_scripts(all_docs: list[Document]) -> None:
    # Technical prose keeps Latin-script names (Linux, GRUB, /etc/fstab), so the bar is a majority per
    # source and a substantial share per document; an untranslated English page would fail both.
    totals = collections.defaultdict(lambda: [0, 0])
    for doc in all_docs:
        counts = collections.Counter(s for s in map(_script_of, doc.text) if s)
        declared = {"Kana": {"Kana", "Han"}}.get(doc.script, {doc.script})  # Japanese mixes kana and kanji
        in_script, letters = sum(counts[s] for s in declared), sum(counts.values())
        totals[doc.source][0] += in_script
        totals[doc.source][1] += letters
        if letters >= 100:
            assert in_script / letters >= 0.25, (doc.id, doc.script, counts.most_common(3))
    for source, (in_script, letters) in totals.items():
        assert in_script / letters >= 0.7, (source, in_script / letters)


def test_at_least_eight_scripts_with_several_languages(all_docs: list[Document]) -> None:
    letters = collections.Counter()
    for doc in all_docs:
        letters.update(s for s in map(_script_of, doc.text) if s)
    required = {"Latin", "Cyrillic", "Greek", "Arabic", "Han", "Kana", "Hangul"}
    present = {s for s, n in letters.items() if n >= 5_000}
    assert required <= present, required - present
    assert len(present) >= 8, present
    languages = collections.defaultdict(set)
    for doc in all_docs:
        languages[doc.script].add(doc.language)
    assert {"en", "fr", "de", "es"} <= languages["Latin"]
    assert {"ru", "uk", "bg"} <= languages["Cyrillic"]
    assert {"ar", "fa", "ur"} <= languages["Arabic"]
    assert len({d.language for d in all_docs if d.language != "python"}) >= 20


def test_every_declared_script_has_heldout_text(all_docs: list[Document]) -> None:
    scripts = {d.script for d in all_docs}
    assert scripts == {d.script for d in all_docs if d.split == "heldout"}


def test_old_records_without_language_fields_still_load(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import blt.corpus as corpus

    path = tmp_path / "builtin.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as out:
        out.write(json.dumps({"id": "kjv/Ge/1", "source": "kjv", "split": "train", "text": "In the beginning\n"}) + "\n")
    monkeypatch.setattr(corpus, "builtin_corpus_path", lambda: path)
    assert corpus.load_builtin_corpus() == [Document("kjv/Ge/1", "kjv", "train", "In the beginning\n")]
    assert corpus.load_builtin_corpus()[0].language == ""


def test_config_accepts_exactly_the_corpus_sources() -> None:
    import typing

    from blt.data.config import DataConfig

    hint = typing.get_type_hints(DataConfig)["builtin_sources"]
    (list_type, _none) = typing.get_args(hint)
    assert set(typing.get_args(typing.get_args(list_type)[0])) == set(SOURCES)


# --- the build script -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def build_corpus():
    path = pathlib.Path(__file__).resolve().parent.parent / "scripts" / "build_corpus.py"
    spec = importlib.util.spec_from_file_location("build_corpus", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_script_sources_match_the_reader(build_corpus) -> None:
    assert build_corpus.SOURCES == SOURCES


def test_html_blocks_drop_navigation_and_keep_pre_lines(build_corpus) -> None:
    page = (
        "<html><head><title>T</title></head><body>"
        '<div class="navheader"><a href="x">Prev</a></div>'
        "<h2>1.1. Titel</h2><p>Ein   Absatz\n mit &amp; Entit&auml;t.</p>"
        "<pre>$ ls -l\nfoo  bar</pre><ul><li>eins</li><li>zwei</li></ul>"
        '<ul class="docnav"><li>Next</li></ul></body></html>'
    )
    assert [b.text for b in build_corpus.html_blocks(page)] == [
        "1.1. Titel", "Ein Absatz mit & Entität.", "$ ls -l\nfoo  bar", "eins", "zwei"]


def test_html_blocks_number_articles(build_corpus) -> None:
    page = "<body><h1>UDHR</h1><header><p>Pre</p></header><article><h2>1</h2><p>A</p></article><article><p>B</p></article></body>"
    assert [b[:2] for b in build_corpus.html_blocks(page, unit_tag="article")] == [
        (0, "UDHR"), (0, "Pre"), (1, "1"), (1, "A"), (2, "B")]


def test_html_block_keys_mask_cross_references(build_corpus) -> None:
    page = '<body><p>See <a class="xref" href="a.html">Раздел 4.1, «Images»</a> for more.</p></body>'
    (block,) = build_corpus.html_blocks(page)
    assert block.text == "See Раздел 4.1, «Images» for more."
    assert block.key == "See \0 for more."


def test_doc_candidates_drop_blocks_shared_with_english(build_corpus, tmp_path) -> None:
    xref = '<a class="xref" href="b.html">{}</a>'
    for lang, body in {
        "en": f"<p>Translated paragraph.</p><pre>apt-get install foo</pre><p>Untranslated, see {xref.format('Section 2')}.</p>"
              "<p>Loaded.</p>",
        "de": f"<p>Übersetzter Absatz.</p><pre>apt-get install foo</pre><p>Untranslated, see {xref.format('Abschnitt 2')}.</p>"
              "<p>--</p>",
        "ru": "<p>Переведённый абзац.</p><p>An English paragraph the page never had.</p>",
    }.items():
        (tmp_path / lang).mkdir()
        (tmp_path / lang / "page.html").write_text(f"<body>{body}</body>", encoding="utf-8")
        (tmp_path / lang / "index.html").write_text("<body><p>Inhalt</p></body>", encoding="utf-8")
    english = build_corpus.page_blocks(tmp_path / "en")
    assert list(english) == ["page.html"]  # the table of contents is skipped
    specs = {"de": build_corpus.SourceSpec("de", "Latin", "handbook", "de"),
             "ru": build_corpus.SourceSpec("ru", "Cyrillic", "handbook", "ru")}
    out = build_corpus.doc_candidates("handbook", tmp_path, ["de", "ru"], english, specs)
    assert out == {
        "de": [build_corpus.Candidate("handbook/de/page.html#0", "Übersetzter Absatz.\n", "de", "Latin")],
        "ru": [build_corpus.Candidate("handbook/ru/page.html#0", "Переведённый абзац.\n", "ru", "Cyrillic")],
    }


def test_doc_candidates_cut_pages_into_chunks(build_corpus, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("corpus.debian_docs.DOC_CHUNK_BYTES", 20)  # read where doc_candidates lives
    (tmp_path / "fr").mkdir()
    paragraphs = [f"Paragraphe numéro {i}." for i in range(5)]
    (tmp_path / "fr" / "p.html").write_text("<body>" + "".join(f"<p>{t}</p>" for t in paragraphs) + "</body>",
                                            encoding="utf-8")
    spec = build_corpus.SourceSpec("fr", "Latin", "handbook", "fr")
    (cands,) = build_corpus.doc_candidates("handbook", tmp_path, ["fr"], {}, {"fr": spec}).values()
    assert [c.id for c in cands] == [f"handbook/fr/p.html#{i}" for i in range(5)]  # each paragraph is >= 20 bytes
    assert "".join(c.text for c in cands) == "".join(t + "\n" for t in paragraphs)


def test_select_fills_each_split_from_its_own_candidates(build_corpus) -> None:
    cands = [build_corpus.Candidate(f"x/{i}", "a" * 100, "en", "Latin") for i in range(400)]
    chosen = build_corpus.select(cands, 10_000)
    by_split = collections.Counter(build_corpus.split_of(c.id) for c in chosen)
    assert by_split == {"train": 90, "heldout": 10}
    assert chosen == [c for c in cands if c in chosen]  # canonical order kept
    assert build_corpus.select(cands, None) == cands


def test_shipped_manifest_matches_the_data() -> None:
    manifest = (builtin_corpus_path().parent / "MANIFEST.md").read_text(encoding="utf-8")
    digest = hashlib.sha256(builtin_corpus_path().read_bytes()).hexdigest()
    assert digest in manifest
    docs = load_builtin_corpus(split=None)
    for source in SOURCES:
        for split in ("train", "heldout"):
            part = [d for d in docs if d.source == source and d.split == split]
            row = f"| {source} | {split} | {len(part):,} | {sum(len(d.text.encode()) for d in part):,} |"
            assert row in manifest, row
