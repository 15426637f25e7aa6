"""The sources drawn from Debian HTML documentation: translated text blocks of each page, in chunks."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import tempfile

from .common import DOCS, SOURCE_SPECS, BuildError, Candidate, SourceSpec, fetch_deb
from .html_text import Block, html_blocks, writes_in

DOC_CHUNK_BYTES = 2_500  # a document = consecutive blocks of one page until at least this many bytes
DOC_SKIPPED_PAGES = frozenset({"index.html"})  # tables of contents
_WORD_RE = re.compile(r"\w")


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
