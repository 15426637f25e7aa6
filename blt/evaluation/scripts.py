"""The Unicode script of a character, by code point ranges (the Unicode blocks of each script).

Scripts: ``Latin``, ``Cyrillic``, ``Greek``, ``Arabic``, ``Han``, ``Kana``, ``Hangul`` and
``other``. Only letters of a script count as that script: ASCII ``A-Z a-z``, the Latin-1
letters (``U+00C0-U+00FF`` but ``×`` and ``÷``, with ``ª`` and ``º``) and the Latin extension
blocks; the Greek, Cyrillic, Arabic, Hangul blocks and their supplements; Hiragana and Katakana
(full and half width) as Kana; CJK ideographs with their extensions, compatibility ideographs,
radicals and the ideographic iteration marks as Han. Everything else is ``other``: spaces,
digits, punctuation (CJK punctuation included), symbols, other scripts, and bytes that are not
valid UTF-8 (a multi-byte character's bytes all take that character's script).
"""

from __future__ import annotations

import bisect

import numpy as np

SCRIPTS = ("Latin", "Cyrillic", "Greek", "Arabic", "Han", "Kana", "Hangul", "other")

_RANGES: list[tuple[int, int, str]] = sorted([
    (0x0041, 0x005A, "Latin"), (0x0061, 0x007A, "Latin"), (0x00AA, 0x00AA, "Latin"), (0x00BA, 0x00BA, "Latin"),
    (0x00C0, 0x00D6, "Latin"), (0x00D8, 0x00F6, "Latin"), (0x00F8, 0x024F, "Latin"), (0x0250, 0x02AF, "Latin"),
    (0x1D00, 0x1D7F, "Latin"), (0x1E00, 0x1EFF, "Latin"), (0x2C60, 0x2C7F, "Latin"), (0xA720, 0xA7FF, "Latin"),
    (0xAB30, 0xAB6F, "Latin"), (0xFB00, 0xFB06, "Latin"), (0xFF21, 0xFF3A, "Latin"), (0xFF41, 0xFF5A, "Latin"),
    (0x0370, 0x03FF, "Greek"), (0x1F00, 0x1FFF, "Greek"),
    (0x0400, 0x052F, "Cyrillic"), (0x1C80, 0x1C8F, "Cyrillic"), (0x2DE0, 0x2DFF, "Cyrillic"), (0xA640, 0xA69F, "Cyrillic"),
    (0x0600, 0x06FF, "Arabic"), (0x0750, 0x077F, "Arabic"), (0x0870, 0x08FF, "Arabic"), (0xFB50, 0xFDFF, "Arabic"),
    (0xFE70, 0xFEFF, "Arabic"),
    (0x2E80, 0x2FDF, "Han"), (0x3005, 0x3005, "Han"), (0x3007, 0x3007, "Han"), (0x3021, 0x3029, "Han"),
    (0x3038, 0x303B, "Han"), (0x3400, 0x4DBF, "Han"), (0x4E00, 0x9FFF, "Han"), (0xF900, 0xFAFF, "Han"),
    (0x20000, 0x2FA1F, "Han"), (0x30000, 0x323AF, "Han"),
    (0x3040, 0x309F, "Kana"), (0x30A0, 0x30FF, "Kana"), (0x31F0, 0x31FF, "Kana"), (0xFF66, 0xFF9F, "Kana"),
    (0x1B000, 0x1B16F, "Kana"),
    (0x1100, 0x11FF, "Hangul"), (0x3130, 0x318F, "Hangul"), (0xA960, 0xA97F, "Hangul"), (0xAC00, 0xD7AF, "Hangul"),
    (0xD7B0, 0xD7FF, "Hangul"), (0xFFA0, 0xFFDC, "Hangul"),
])
_STARTS = [lo for lo, _, _ in _RANGES]
SCRIPT_INDEX = {name: i for i, name in enumerate(SCRIPTS)}


def script_of(char: str) -> str:
    """The script of one character (:data:`SCRIPTS`); a lone surrogate (an undecodable byte) is ``other``."""
    cp = ord(char)
    i = bisect.bisect_right(_STARTS, cp) - 1
    if i >= 0 and _RANGES[i][0] <= cp <= _RANGES[i][1]:
        return _RANGES[i][2]
    return "other"


def byte_scripts(data: bytes) -> np.ndarray:
    """``int8[len(data)]``: index in :data:`SCRIPTS` of the script of the character each byte belongs to."""
    text = bytes(data).decode("utf-8", errors="surrogateescape")
    out = np.empty(len(data), dtype=np.int8)
    pos = 0
    cache: dict[str, tuple[int, int]] = {}
    for char in text:
        got = cache.get(char)
        if got is None:
            got = cache[char] = (SCRIPT_INDEX[script_of(char)], len(char.encode("utf-8", errors="surrogateescape")))
        out[pos : pos + got[1]] = got[0]
        pos += got[1]
    assert pos == len(data)
    return out


__all__ = ["SCRIPTS", "SCRIPT_INDEX", "byte_scripts", "script_of"]
