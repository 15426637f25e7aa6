"""Corpus file formats, one reader per module, and how a file's format is chosen.

Every reader is ``iter_X(path, text_field) -> Iterator[(suffix, data: bytes)]``: the suffix (``#i``
for a text piece, ``:n`` for a record) follows the file's name in a document id, so ids are
stable. ``[data] format = "auto"`` picks by name: ``.jsonl``/``.ndjson`` (optionally ``.gz``,
``.zst``) are JSON Lines, ``.parquet``/``.parq`` Parquet, a ``save_to_disk`` directory a Hugging
Face dataset (:mod:`~blt.data.formats.hf`; a lone ``.arrow`` file is read by the same Arrow
reader), anything else text (``.gz``/``.zst`` decompressed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from blt.data.formats.compression import strip_compression
from blt.data.formats.hf import iter_arrow_file
from blt.data.formats.jsonl import iter_jsonl_file
from blt.data.formats.parquet import iter_parquet_file
from blt.data.formats.text import iter_text_file

FORMATS = ("auto", "text", "jsonl", "parquet", "hf")
Reader = Callable[[Path, str], Iterator[tuple[str, bytes]]]
READERS: dict[str, Reader] = {"text": iter_text_file, "jsonl": iter_jsonl_file, "parquet": iter_parquet_file,
                              "hf": iter_arrow_file}


def file_format(path: Path, fmt: str) -> str:
    """The reader for one file: ``fmt`` unless it is ``"auto"``, then by the file's name."""
    if fmt != "auto":
        return fmt
    name = strip_compression(path.name).lower()
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if name.endswith((".parquet", ".parq")):
        return "parquet"  # compressed whole (.parquet.gz), the Parquet reader says it cannot read it
    if name.endswith(".arrow"):
        return "hf"  # an Arrow IPC file, as a saved dataset's shards are
    return "text"


__all__ = ["FORMATS", "READERS", "file_format"]
