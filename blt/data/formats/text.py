"""Plain text files (optionally ``.gz``/``.zst``): one file is one document.

The file is cut at line ends into pieces of at most about ``TEXT_PIECE_BYTES`` so one huge file
never needs one huge buffer; piece ``i`` has the id suffix ``#i``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from blt.data.formats.compression import open_binary

TEXT_PIECE_BYTES = 1 << 20


def iter_text_file(path: Path, text_field: str = "text") -> Iterator[tuple[str, bytes]]:
    """``(suffix, data)`` per piece (``text_field`` is unused: text files have no fields)."""
    del text_field
    piece, size, index = [], 0, 0
    with open_binary(path) as fh:
        for line in fh:
            piece.append(line)
            size += len(line)
            if size >= TEXT_PIECE_BYTES:
                yield f"#{index}", b"".join(piece)
                piece, size, index = [], 0, index + 1
    if piece:
        yield f"#{index}", b"".join(piece)


__all__ = ["TEXT_PIECE_BYTES", "iter_text_file"]
