"""JSON Lines (``.jsonl``/``.ndjson``, optionally ``.gz`` or ``.zst``): one object per line,
the document in its ``text_field`` string; line ``n`` (1-based, blank lines skipped but counted)
has the id suffix ``:n``. Read line by line from a streaming decompressor."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from blt.data.errors import DataError
from blt.data.formats.compression import open_binary


def iter_jsonl_file(path: Path, text_field: str = "text") -> Iterator[tuple[str, bytes]]:
    """``(suffix, data)`` per record."""
    with open_binary(path) as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise DataError(f"{path}:{line_no}: not valid JSON ({exc}); JSON Lines needs one object per line") from None
            if not isinstance(record, dict) or text_field not in record:
                raise DataError(f"{path}:{line_no}: no {text_field!r} field; set [data] text_field to the field holding the text")
            text = record[text_field]
            if not isinstance(text, str):
                raise DataError(f"{path}:{line_no}: field {text_field!r} is {type(text).__name__}, expected a string; "
                                "set [data] text_field to a field holding text")
            yield f":{line_no}", text.encode("utf-8", errors="surrogateescape")


__all__ = ["iter_jsonl_file"]
