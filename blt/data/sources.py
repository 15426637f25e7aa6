"""Document sources: the built-in corpus and corpus files (text, JSON Lines, Parquet, Hugging Face
``save_to_disk`` datasets, and directories of them), streamed.

A source yields ``(doc_id, data: bytes)`` one document at a time, so a large corpus is never held
in memory (each reader in :mod:`blt.data.formats` holds at most a small batch of records, or one
text piece of about 1 MiB). Documents that are empty or all whitespace are skipped; a source
that yields nothing is an error when its store is built.

A ``[data] source`` entry expands to *units*, the files actually read: a file is one unit; a
directory is walked recursively in sorted order (names starting with ``.`` and the Spark/Hadoop
markers ``_SUCCESS``, ``_metadata``, ``_common_metadata`` skipped), and a ``save_to_disk``
directory inside it (or the entry itself) gives its Arrow shards in the dataset's own order.
Each unit has a *name* relative to its source entry (its path inside the directory, or the file's
name), and a document's *split key* is that name plus the reader's suffix (``#piece``, ``:line``
or ``:row``): the held-out rule hashes the split key, so the split does not depend on where the
corpus lies on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import attrs

from blt.data.config import DataConfig
from blt.data.errors import DataError
from blt.data.formats import READERS, file_format
from blt.data.formats.hf import dataset_units, is_dataset_dir
from blt.data.formats.text import TEXT_PIECE_BYTES

# A file document is held out iff sha256(split key) % 10 == 0 (the built-in rule), unless its
# dataset has its own held-out split (a DatasetDict's validation/test split).
HELDOUT_MODULUS = 10
SKIPPED_NAMES = frozenset({"_SUCCESS", "_metadata", "_common_metadata"})


@attrs.frozen
class Unit:
    """One file to read: ``name`` relative to its source entry, its reader ``fmt``, and ``split``:
    ``"train"``/``"heldout"`` when the dataset fixes the split of its rows, None for the hash rule."""

    path: Path
    name: str
    fmt: str
    split: str | None = None


def as_paths(source: str | list[str]) -> list[str]:
    return [source] if isinstance(source, str) else list(source)


def is_builtin(source: str | list[str] | None) -> bool:
    return source == "builtin" or source == ["builtin"]


def _dataset(root: Path, prefix: str) -> list[Unit]:
    return [Unit(shard, prefix + name, "hf", role) for shard, name, role in dataset_units(root)]


def _walk(root: Path, fmt: str) -> list[Unit]:
    if fmt in ("auto", "hf") and is_dataset_dir(root):
        return _dataset(root, "")
    if fmt == "hf":
        raise DataError(f"{root} is not a datasets save_to_disk directory (no state.json or dataset_dict.json); "
                        "point [data] source at the directory save_to_disk wrote, or set [data] format")
    units: list[Unit] = []

    def visit(folder: Path) -> None:
        for entry in sorted(folder.iterdir(), key=lambda p: p.name):
            if entry.name.startswith(".") or entry.name in SKIPPED_NAMES:
                continue
            name = entry.relative_to(root).as_posix()
            if entry.is_dir():
                if fmt == "auto" and is_dataset_dir(entry):
                    units.extend(_dataset(entry, name + "/"))
                else:
                    visit(entry)
            elif entry.is_file():
                units.append(Unit(entry, name, file_format(entry, fmt)))

    visit(root)
    return units


def expand_units(source: str | list[str], fmt: str = "auto") -> list[Unit]:
    """Every unit named by ``source``, in reading order; missing paths and empty directories fail."""
    if fmt not in READERS and fmt != "auto":
        raise DataError(f"unknown [data] format {fmt!r}; choose auto, {', '.join(READERS)}")
    units: list[Unit] = []
    for raw in as_paths(source):
        path = Path(raw).expanduser()
        if path.is_dir():
            found = _walk(path, fmt)
            if not found:
                raise DataError(f"corpus directory {path} contains no files; put .txt, .jsonl or .parquet files in it")
            units.extend(found)
        elif path.is_file():
            if fmt == "hf":
                raise DataError(f"{path} is a file, but [data] format = \"hf\" reads save_to_disk directories; "
                                "name the dataset's directory")
            units.append(Unit(path, path.name, file_format(path, fmt)))
        else:
            raise DataError(f"corpus path does not exist: {path} (set [data] source to existing files or directories, or \"builtin\")")
    return units


def expand_files(source: str | list[str], fmt: str = "auto") -> list[Path]:
    """Every file read for ``source`` (see :func:`expand_units`); missing paths fail."""
    return [unit.path for unit in expand_units(source, fmt)]


def held_out(split_key: str) -> bool:
    """The one held-out rule for file corpora, shared by the data pipeline and the entropy-model corpus."""
    return int(hashlib.sha256(split_key.encode("utf-8", errors="surrogateescape")).hexdigest(), 16) % HELDOUT_MODULUS == 0


def iter_file_documents(source: str | list[str], split: str | None = None, *, fmt: str = "auto",
                        text_field: str = "text", hash_split: bool = True) -> Iterator[tuple[str, bytes]]:
    """``(doc_id, bytes)`` of the files (or directories) in ``source``, in a fixed order.

    ``split`` None: every document. ``"train"``/``"heldout"``: the documents of that split, a
    dataset's own split where it has one, else by :func:`held_out` of the split key (or, with
    ``hash_split=False``, every document without a fixed split: the held-out set is given
    separately). The id is the file's path plus the reader's suffix. Empty documents are not
    dropped here.
    """
    if split not in (None, "train", "heldout"):
        raise ValueError(f"split must be None, 'train' or 'heldout', got {split!r}")
    for unit in expand_units(source, fmt):
        if split is not None and unit.split is not None and unit.split != split:
            continue
        for suffix, data in READERS[unit.fmt](unit.path, text_field):
            if split is None or unit.split is not None or not hash_split or held_out(unit.name + suffix) == (split == "heldout"):
                yield f"{unit.path}{suffix}", data


def iter_documents(config: DataConfig, split: str) -> Iterator[tuple[str, bytes]]:
    """Stream ``(doc_id, bytes)`` for ``split`` (``"train"`` or ``"heldout"``) in a fixed order.

    Empty or whitespace-only documents are skipped; ``max_documents`` caps the count.
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    source = config.heldout if split == "heldout" and config.heldout is not None else config.source
    count = 0
    for doc_id, data in _raw(source, config, split):
        if not data.strip():
            continue
        yield doc_id, data
        count += 1
        if config.max_documents is not None and count >= config.max_documents:
            return


def _raw(source: str | list[str], config: DataConfig, split: str) -> Iterator[tuple[str, bytes]]:
    if is_builtin(source):
        from blt.corpus import iter_builtin_documents

        kwargs = {"sources": config.builtin_sources} if config.builtin_sources else {}
        for doc in iter_builtin_documents(split=split, **kwargs):
            yield doc.id, doc.text.encode("utf-8", errors="surrogateescape")
        return
    # An explicit held-out source replaces the hash rule: train on all of `source`, evaluate on all of `heldout`.
    yield from iter_file_documents(source, split, fmt=config.format, text_field=config.text_field,
                                   hash_split=config.heldout is None)


def source_fingerprint(config: DataConfig, split: str) -> str:
    """A hash naming exactly which documents ``iter_documents(config, split)`` yields.

    Files are identified by path, size and modification time (cheap, no re-reading).
    """
    h = hashlib.sha256()
    source = config.heldout if split == "heldout" and config.heldout is not None else config.source
    h.update(json.dumps([split, config.format, config.text_field, config.max_documents, config.builtin_sources,
                         config.heldout is not None]).encode())
    if is_builtin(source):
        from blt.corpus import builtin_corpus_path

        sums = builtin_corpus_path().with_name("SHA256SUMS")
        h.update(b"builtin:" + (sums.read_bytes() if sums.is_file() else str(builtin_corpus_path().stat().st_size).encode()))
    else:
        for unit in expand_units(source, config.format):
            st = unit.path.stat()
            role = "" if unit.split is None else f":{unit.split}"
            h.update(f"{os.path.abspath(unit.path)}:{st.st_size}:{st.st_mtime_ns}{role}\n".encode())
    return h.hexdigest()[:16]


__all__ = ["TEXT_PIECE_BYTES", "DataError", "Unit", "expand_files", "expand_units", "file_format", "held_out",
           "iter_documents", "iter_file_documents", "source_fingerprint"]
