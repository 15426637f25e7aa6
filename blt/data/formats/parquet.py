"""Parquet files (pyarrow): one row is one document, its text in the ``text_field`` column.

Only that column is read, ``BATCH_ROWS`` rows at a time (unbuffered reads, no pre-buffering of
row groups), so memory stays at about one batch and one data page, whatever the file's size.
Row ``r`` (0-based, counted over the whole file) has the id suffix ``:r``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from blt.data.errors import DataError

BATCH_ROWS = 64


def string_column_error(path: Path, text_field: str, schema) -> str | None:
    """Why ``schema`` (a pyarrow schema) has no usable ``text_field`` string column, or None."""
    import pyarrow as pa

    if text_field not in schema.names:
        return (f"{path}: no column {text_field!r} (columns: {', '.join(schema.names) or 'none'}); "
                "set [data] text_field to the column holding the text")
    kind = schema.field(text_field).type
    is_view = getattr(pa.types, "is_string_view", lambda _t: False)
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or is_view(kind)):
        return (f"{path}: column {text_field!r} has type {kind}, expected strings; "
                "set [data] text_field to a column holding text")
    return None


def iter_column(path: Path, text_field: str, batches, start: int = 0) -> Iterator[tuple[str, bytes]]:
    """``(":row", data)`` of the one-column record batches ``batches``; nulls are errors."""
    row = start
    for batch in batches:
        column = batch.column(0)
        for value in column.to_pylist():
            if value is None:
                raise DataError(f"{path}: row {row} of column {text_field!r} is null; drop or fill empty rows "
                                "(a document needs a string)")
            yield f":{row}", value.encode("utf-8", errors="surrogateescape")
            row += 1


def iter_parquet_file(path: Path, text_field: str = "text") -> Iterator[tuple[str, bytes]]:
    """``(suffix, data)`` per row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc}); set [data] format if it is another format") from None
    with pf:
        why = string_column_error(path, text_field, pf.schema_arrow)
        if why:
            raise DataError(why)
        yield from iter_column(path, text_field, pf.iter_batches(batch_size=BATCH_ROWS, columns=[text_field], use_threads=False))


__all__ = ["BATCH_ROWS", "iter_parquet_file"]
