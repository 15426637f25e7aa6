"""The ``chinese`` source: Tang poems from npm ``chinese-poetry``, ten consecutive poems per document."""

from __future__ import annotations

import io
import json
import pathlib
import re
import tarfile
from collections.abc import Iterator

from .common import Candidate

POETRY_PACKAGE = "chinese-poetry"
POETRY_VERSION = "2.0.1"
POETRY_TARBALL_SHA256 = "25b549e46919c3a0569db6b68ddc96956b04a484ea4518ad2bbd4f137e307e86"
POETRY_DIR = "package/dist/quantangshi/"
POETRY_FILE_RE = re.compile(r"poet\.tang\.(\d+)\.json")
POEMS_PER_DOCUMENT = 10


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
