"""Hugging Face ``datasets`` directories written by ``save_to_disk``, read without ``datasets``.

A ``Dataset`` directory holds ``state.json`` (its ``_data_files`` list the shards in order),
``dataset_info.json`` and the shards, Arrow IPC *stream* files (what ``datasets`` writes). A
``DatasetDict`` directory holds ``dataset_dict.json`` (``{"splits": [...]}``) and one ``Dataset``
directory per split. The shards are memory-mapped and read a record batch at a time (``BATCH_ROWS``
rows converted at once), so nothing is loaded whole.

Splits of a ``DatasetDict``: ``train`` is the training split and ``validation`` (else ``test``) the
held-out split; other splits are not read. Without a held-out split, its ``train`` documents are
split by the usual hash rule. Row ``r`` (0-based, over one shard) of shard ``F`` has the id suffix
``:r`` after the shard's name (``train/data-00000-of-00001.arrow:r`` for a ``DatasetDict``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from blt.data.errors import DataError
from blt.data.formats.parquet import iter_column, string_column_error

BATCH_ROWS = 64
HELDOUT_SPLITS = ("validation", "test")


def is_dataset_dir(path: Path) -> bool:
    """Whether ``path`` is a ``save_to_disk`` directory (a ``Dataset`` or a ``DatasetDict``)."""
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file() and (
        (path / "dataset_info.json").is_file() or any(path.glob("*.arrow")))


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable ({exc}); re-save the dataset with datasets' save_to_disk") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object; re-save the dataset with datasets' save_to_disk")
    return data


def _shards(path: Path) -> list[Path]:
    state = _read_json(path / "state.json")
    files = state.get("_data_files")
    if not isinstance(files, list) or not all(isinstance(f, dict) and isinstance(f.get("filename"), str) for f in files):
        raise DataError(f"{path / 'state.json'}: no _data_files list; re-save the dataset with datasets' save_to_disk")
    shards = [path / f["filename"] for f in files]
    if not shards:
        raise DataError(f"{path}: the dataset has no data files; it is empty")
    for shard in shards:
        if not shard.is_file():
            raise DataError(f"{shard}: listed in {path / 'state.json'} but missing; copy the whole dataset directory")
    return shards


def dataset_units(path: Path) -> list[tuple[Path, str, str | None]]:
    """``(shard, name relative to path, split role)`` in reading order; the role is ``"train"``,
    ``"heldout"`` or None (split by the hash rule)."""
    if not (path / "dataset_dict.json").is_file():
        return [(s, s.name, None) for s in _shards(path)]
    splits = _read_json(path / "dataset_dict.json").get("splits")
    if not isinstance(splits, list) or not all(isinstance(s, str) for s in splits):
        raise DataError(f"{path / 'dataset_dict.json'}: no splits list; re-save the dataset with datasets' save_to_disk")
    heldout = next((s for s in HELDOUT_SPLITS if s in splits), None)
    if "train" not in splits and heldout is None:
        raise DataError(f"{path}: a DatasetDict with splits {', '.join(splits) or 'none'}; blt reads 'train' and "
                        f"'validation' or 'test': save those splits, or save one split alone")
    units: list[tuple[Path, str, str | None]] = []
    for split, role in (("train", "train" if heldout else None), (heldout, "heldout")):
        if split in splits:
            units += [(s, f"{split}/{s.name}", role) for s in _shards(path / split)]
    return units


def iter_arrow_file(path: Path, text_field: str = "text") -> Iterator[tuple[str, bytes]]:
    """``(suffix, data)`` per row of one shard."""
    import pyarrow as pa

    try:
        source = pa.memory_map(str(path), "r")
        try:
            reader = pa.ipc.open_stream(source)
        except pa.ArrowInvalid:
            reader = pa.ipc.open_file(source)  # the random-access layout, should a writer use it
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not an Arrow file of a saved dataset ({exc}); re-save it with save_to_disk") from None
    with source:
        why = string_column_error(path, text_field, reader.schema)
        if why:
            raise DataError(why)
        index = reader.schema.get_field_index(text_field)

        def batches():
            stream = reader if isinstance(reader, pa.RecordBatchStreamReader) else (
                reader.get_batch(i) for i in range(reader.num_record_batches))
            for batch in stream:
                column = batch.column(index)
                for start in range(0, len(column), BATCH_ROWS):
                    yield pa.record_batch([column.slice(start, BATCH_ROWS)], names=[text_field])

        yield from iter_column(path, text_field, batches())


__all__ = ["dataset_units", "is_dataset_dir", "iter_arrow_file"]
