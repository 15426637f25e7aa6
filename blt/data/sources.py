"""Document sources: the built-in corpus, text files, JSON Lines files and directories, streamed.

A source yields ``(doc_id, data: bytes)`` one document at a time, so a large corpus is never held
in memory. A text file is one document, cut at line ends into pieces of at most
``TEXT_PIECE_BYTES`` so one huge file never needs one huge buffer. Documents that are empty or
all whitespace are skipped; a source that yields nothing is an error (see ``count_check``).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from blt.core.errors import InputError
from blt.data.config import DataConfig

TEXT_PIECE_BYTES = 1 << 20
# A file document is held out iff sha256(split key) % 10 == 0 (the built-in rule). The split key is
# the document id with the file named relative to the source entry that found it (its path inside a
# source directory, or its file name): the split does not change when the corpus moves.
HELDOUT_MODULUS = 10


class DataError(InputError):
    """A corpus path is missing or unreadable, or a corpus has no text."""


def as_paths(source: str | list[str]) -> list[str]:
    return [source] if isinstance(source, str) else list(source)


def is_builtin(source: str | list[str] | None) -> bool:
    return source == "builtin" or source == ["builtin"]


def expand_files(source: str | list[str]) -> list[Path]:
    """Every file named by ``source`` (directories walked recursively, sorted); missing paths fail."""
    return [path for path, _ in _expand_with_names(source)]


def _expand_with_names(source: str | list[str]) -> list[tuple[Path, str]]:
    """``(path, name)`` per file: ``name`` is the path inside its source directory, or the file's name."""
    files: list[tuple[Path, str]] = []
    for raw in as_paths(source):
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not found:
                raise DataError(f"corpus directory {path} contains no files; put .txt or .jsonl files in it")
            files.extend((p, p.relative_to(path).as_posix()) for p in found)
        elif path.is_file():
            files.append((path, path.name))
        else:
            raise DataError(f"corpus path does not exist: {path} (set [data] source to existing files or directories, or \"builtin\")")
    return files


def file_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    name = path.name.lower()
    return "jsonl" if name.endswith((".jsonl", ".jsonl.gz", ".ndjson")) else "text"


def _open_text(path: Path):
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def _iter_text_file(path: Path) -> Iterator[tuple[str, bytes]]:
    """``(suffix, data)`` per piece: the suffix ``#index`` follows the file's name in a document id."""
    piece, size, index = [], 0, 0
    with _open_text(path) as fh:
        for line in fh:
            piece.append(line)
            size += len(line)
            if size >= TEXT_PIECE_BYTES:
                yield f"#{index}", b"".join(piece)
                piece, size, index = [], 0, index + 1
    if piece:
        yield f"#{index}", b"".join(piece)


def _iter_jsonl_file(path: Path, text_field: str) -> Iterator[tuple[str, bytes]]:
    """``(suffix, data)`` per record: the suffix ``:line`` follows the file's name in a document id."""
    with _open_text(path) as fh:
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
                raise DataError(f"{path}:{line_no}: field {text_field!r} is {type(text).__name__}, expected a string")
            yield f":{line_no}", text.encode("utf-8", errors="surrogateescape")


def held_out(split_key: str) -> bool:
    """The one held-out rule for file corpora, shared by the data pipeline and the entropy-model corpus."""
    return int(hashlib.sha256(split_key.encode("utf-8", errors="surrogateescape")).hexdigest(), 16) % HELDOUT_MODULUS == 0


def _iter_paths(source: str | list[str], fmt: str, text_field: str) -> Iterator[tuple[str, str, bytes]]:
    """``(doc_id, split_key, data)``: the split key names the file relative to its source entry."""
    for path, name in _expand_with_names(source):
        docs = _iter_jsonl_file(path, text_field) if file_format(path, fmt) == "jsonl" else _iter_text_file(path)
        for suffix, data in docs:
            yield f"{path}{suffix}", name + suffix, data


def iter_file_documents(source: str | list[str], split: str | None = None, *, fmt: str = "auto",
                        text_field: str = "text") -> Iterator[tuple[str, bytes]]:
    """``(doc_id, bytes)`` of the files (or directories) in ``source``, in a fixed order: every
    document when ``split`` is None, else only those of ``split`` (``"train"`` or ``"heldout"``) by
    :func:`held_out`. Empty documents are not dropped here."""
    if split not in (None, "train", "heldout"):
        raise ValueError(f"split must be None, 'train' or 'heldout', got {split!r}")
    for doc_id, split_key, data in _iter_paths(source, fmt, text_field):
        if split is None or held_out(split_key) == (split == "heldout"):
            yield doc_id, data


def iter_documents(config: DataConfig, split: str) -> Iterator[tuple[str, bytes]]:
    """Stream ``(doc_id, bytes)`` for ``split`` (``"train"`` or ``"heldout"``) in a fixed order.

    Empty or whitespace-only documents are skipped; ``max_documents`` caps the count.
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    if split == "heldout" and config.heldout is not None:
        docs = _raw(config.heldout, config, None)
    else:
        docs = _raw(config.source, config, split)
    count = 0
    for doc_id, data in docs:
        if not data.strip():
            continue
        yield doc_id, data
        count += 1
        if config.max_documents is not None and count >= config.max_documents:
            return


def _raw(source: str | list[str], config: DataConfig, split: str | None) -> Iterator[tuple[str, bytes]]:
    if is_builtin(source):
        from blt.corpus import iter_builtin_documents

        kwargs = {"sources": config.builtin_sources} if config.builtin_sources else {}
        for doc in iter_builtin_documents(split=split or "train", **kwargs):
            yield doc.id, doc.text.encode("utf-8", errors="surrogateescape")
        return
    explicit_heldout = config.heldout is not None
    yield from iter_file_documents(source, None if explicit_heldout else split, fmt=config.format,
                                   text_field=config.text_field)


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
        for path in expand_files(source):
            st = path.stat()
            h.update(f"{os.path.abspath(path)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


__all__ = ["DataError", "expand_files", "held_out", "iter_documents", "iter_file_documents", "source_fingerprint"]
