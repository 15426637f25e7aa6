"""Opening a corpus file as a binary stream, decompressing ``.gz`` and ``.zst`` by its name.

Both decompressors stream (gzip's reader, zstandard's ``stream_reader`` across frames), so a
compressed shard is read with a buffer of a few hundred kilobytes, whatever its size.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import BinaryIO

from blt.data.errors import DataError


def compression(path: Path) -> str | None:
    """``"gz"``, ``"zst"`` or ``None`` from the file name."""
    name = path.name.lower()
    if name.endswith(".gz"):
        return "gz"
    if name.endswith((".zst", ".zstd")):
        return "zst"
    return None


def strip_compression(name: str) -> str:
    """``name`` without a ``.gz``/``.zst``/``.zstd`` ending (to see the format underneath)."""
    lower = name.lower()
    for end in (".gz", ".zst", ".zstd"):
        if lower.endswith(end):
            return name[: -len(end)]
    return name


def open_binary(path: Path) -> BinaryIO:
    """A buffered binary stream of the file's (decompressed) bytes; iterate it for lines."""
    kind = compression(path)
    if kind == "gz":
        return gzip.open(path, "rb")
    if kind == "zst":
        try:
            import zstandard
        except ImportError:
            raise DataError(f"{path}: reading .zst needs the zstandard package (pip install zstandard)") from None
        raw = open(path, "rb")
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)
        return io.BufferedReader(reader, buffer_size=1 << 18)
    return open(path, "rb")


__all__ = ["compression", "open_binary", "strip_compression"]
