"""The built-in multilingual corpus shipped with blt: prose in 12 scripts and 23 languages, plus Python code.

The data is one gzip JSON Lines file, ``blt/resources/corpus/builtin.jsonl.gz``, built by
``scripts/build_corpus.py``; sources, licences, counts and the split rule are in
``blt/resources/corpus/MANIFEST.md``. Nothing here reads a file until it is called.

Sources (``SOURCES``): ``kjv`` (English, King James Bible), ``python`` (CPython standard library),
``chinese`` (Tang poems, Classical Chinese); ``fr de es ru el ar fa ja ko zh`` (Debian
documentation translated into that language); ``udhr`` (the Universal Declaration of Human
Rights in Hebrew, Yiddish, Hindi, Marathi, Nepali, Thai, Armenian, Georgian, Ukrainian,
Bulgarian and Urdu). Each document records its ``language`` (BCP 47; ``python`` for code) and
``script``.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import json
import pathlib
from collections.abc import Iterable, Iterator

import attrs

from blt.core.errors import InputError

SOURCES = ("kjv", "python", "chinese", "fr", "de", "es", "ru", "el", "ar", "fa", "ja", "ko", "zh", "udhr")
SPLITS = ("train", "heldout")
_CORPUS_FILE = "builtin.jsonl.gz"


class CorpusError(InputError):
    """The built-in corpus was asked for something it does not have, or its file is damaged."""


@attrs.frozen
class Document:
    """One document of the corpus: a KJV chapter, a stdlib file, ten Tang poems, a piece of a
    documentation page, or one article of the UDHR.

    ``language`` is a BCP 47 tag (``"python"`` for code) and ``script`` the Unicode script of the
    text (``"Kana"`` for Japanese, which mixes kana and Han); both are ``""`` in records that
    predate them.
    """

    id: str
    source: str
    split: str
    text: str
    language: str = ""
    script: str = ""


def _corpus_dir() -> pathlib.Path:
    # The package is installed as plain files (no zip import), so the Traversable is a real path.
    return pathlib.Path(str(importlib.resources.files("blt") / "resources" / "corpus"))


def builtin_corpus_path() -> pathlib.Path:
    """Path of ``builtin.jsonl.gz`` inside the installed package."""
    return _corpus_dir() / _CORPUS_FILE


def sample_text_path() -> pathlib.Path:
    """Path of ``sample.txt``: a ~1.2 KB mix of KJV prose, a Python function and two lines of Tang poetry."""
    return pathlib.Path(str(importlib.resources.files("blt") / "resources" / "sample.txt"))


def _check_choice(kind: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise CorpusError(f"unknown {kind} {value!r} for the built-in corpus; expected one of {', '.join(allowed)}")


def iter_builtin_documents(split: str | None = "train", sources: Iterable[str] | None = None) -> Iterator[Document]:
    """Stream documents from the gz file in file order.

    ``split`` is ``"train"``, ``"heldout"`` or ``None`` for both; ``sources`` is any subset of
    ``SOURCES`` (``None`` = all). Unknown names raise :class:`CorpusError` before any reading.
    """
    if split is not None:
        _check_choice("split", split, SPLITS)
    wanted = set(SOURCES) if sources is None else set(sources)
    for source in sorted(wanted):
        _check_choice("source", source, SOURCES)
    path = builtin_corpus_path()
    if not path.is_file():
        raise CorpusError(f"built-in corpus file is missing: {path} (rebuild with `python scripts/build_corpus.py`)")
    return _iter_documents(path, split, wanted)


def _iter_documents(path: pathlib.Path, split: str | None, sources: set[str]) -> Iterator[Document]:
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line_no, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
                doc = Document(id=record["id"], source=record["source"], split=record["split"], text=record["text"],
                               language=record.get("language", ""), script=record.get("script", ""))
            except (ValueError, KeyError, TypeError) as exc:
                raise CorpusError(f"{path}:{line_no}: malformed corpus record ({exc})") from exc
            if doc.source in sources and (split is None or doc.split == split):
                yield doc


def load_builtin_corpus(split: str | None = "train", sources: Iterable[str] | None = None) -> list[Document]:
    """All matching documents as a list, in file order (deterministic); see :func:`iter_builtin_documents`."""
    return list(iter_builtin_documents(split=split, sources=sources))


def verify_builtin_corpus() -> None:
    """Check ``builtin.jsonl.gz`` against the SHA-256 recorded in ``SHA256SUMS``; raise :class:`CorpusError` if not."""
    sums_path = _corpus_dir() / "SHA256SUMS"
    path = builtin_corpus_path()
    expected = None
    for line in sums_path.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.strip().partition("  ")
        if name.lstrip("*") == _CORPUS_FILE:
            expected = digest.lower()
    if expected is None:
        raise CorpusError(f"{sums_path} has no entry for {_CORPUS_FILE}")
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != expected:
        raise CorpusError(
            f"{path} has SHA-256 {actual}, but {sums_path.name} records {expected}; "
            "the file is damaged or was changed without rebuilding (python scripts/build_corpus.py)"
        )
