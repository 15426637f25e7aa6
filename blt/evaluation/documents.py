"""The documents an evaluation runs on: ``(doc_id, source, data: bytes)``.

``source`` names where a document comes from, for BPB by source: the built-in corpus's own source
(``kjv``, ``python``, ``fr``, ...), or for file corpora the file's name relative to the source
entry that found it (its path inside a source directory, or the file's name), as the held-out
rule names it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from blt.data.sources import DataError

Document = tuple[str, str, bytes]


def _unit_names(paths: str | list[str], fmt: str) -> list[tuple[str, str]]:
    """``(path prefix of a document id, source name)`` per file, longest prefix first."""
    from blt.data.sources import expand_units

    names = [(str(unit.path), unit.name) for unit in expand_units(paths, fmt)]
    return sorted(names, key=lambda item: -len(item[0]))


def _name_of(doc_id: str, names: list[tuple[str, str]]) -> str:
    for prefix, name in names:
        if doc_id.startswith(prefix):
            return name
    return doc_id


def limit_bytes(docs: Iterable[Document], max_bytes: int | None) -> list[Document]:
    """Documents in order until ``max_bytes`` bytes; the last one cut at a UTF-8 character boundary."""
    out: list[Document] = []
    total = 0
    for doc_id, source, data in docs:
        if max_bytes is not None and total >= max_bytes:
            break
        cut = max_bytes is not None and total + len(data) > max_bytes
        if cut:
            end = max_bytes - total
            while 0 < end < len(data) and (data[end] & 0xC0) == 0x80:  # inside a multi-byte character
                end -= 1
            data = data[:end]
        if data:
            out.append((doc_id, source, data))
            total += len(data)
        if cut:
            break
    return out


def heldout_documents(config: Any, *, max_bytes: int | None = None) -> list[Document]:
    """The run's held-out split (``[data]`` as the run trained), in the data pipeline's order."""
    from blt.data.sources import is_builtin, iter_documents

    data = config.data
    source = data.heldout if data.heldout is not None else data.source
    if is_builtin(source):
        from blt.corpus import iter_builtin_documents

        kwargs = {"sources": data.builtin_sources} if data.builtin_sources else {}
        source_of = {doc.id: doc.source for doc in iter_builtin_documents(split="heldout", **kwargs)}
        docs: Iterator[Document] = ((i, source_of.get(i, "builtin"), d) for i, d in iter_documents(data, "heldout"))
    else:
        names = _unit_names(source, data.format)
        docs = ((i, _name_of(i, names), d) for i, d in iter_documents(data, "heldout"))
    out = limit_per_source(docs, max_bytes)
    if not out:
        raise DataError(f"the held-out split of {source!r} has no text to evaluate on")
    return out


def limit_per_source(docs: Iterable[Document], max_bytes: int | None) -> list[Document]:
    """``max_bytes`` split evenly over the sources (each source's first documents, in order, up
    to ``max_bytes // sources`` bytes; sources in order of first appearance), so a capped
    evaluation covers every source of the split, not only the first."""
    docs = list(docs)
    if max_bytes is None:
        return docs
    by_source: dict[str, list[Document]] = {}
    for doc in docs:
        by_source.setdefault(doc[1], []).append(doc)
    quota = max(1, max_bytes // max(len(by_source), 1))
    return [doc for group in by_source.values() for doc in limit_bytes(group, quota)]


def file_documents(paths: list[str], text_field: str = "text", *, fmt: str = "auto",
                   max_bytes: int | None = None) -> list[Document]:
    """Every non-empty document of ``paths`` (text, JSON Lines, ... files or directories)."""
    from blt.data.sources import iter_file_documents

    names = _unit_names(list(paths), fmt)
    docs = ((i, _name_of(i, names), d) for i, d in iter_file_documents(list(paths), None, fmt=fmt, text_field=text_field)
            if d.strip())
    out = limit_bytes(docs, max_bytes)
    if not out:
        raise DataError(f"no text to evaluate on in {', '.join(map(str, paths))}: every document is empty or whitespace")
    return out


__all__ = ["Document", "file_documents", "heldout_documents", "limit_bytes"]
