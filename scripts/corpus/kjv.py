"""The ``kjv`` source: the King James Bible from Debian's ``bible`` CLI, one document per chapter."""

from __future__ import annotations

import re
import shutil
import subprocess

from .common import BuildError, Candidate, sha256_hex

KJV_DEBIAN_VERSION = "4.38"
KJV_RANGE = "Gen1:1-Rev22:21"
# sha256 of the exact `bible -f "Gen1:1-Rev22:21"` output from bible-kjv 4.38.
KJV_OUTPUT_SHA256 = "cd45f0c9cedab8e4439bd6486c8952c77cc8b0ecc5d1f6ae3513f2039f47229d"

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
