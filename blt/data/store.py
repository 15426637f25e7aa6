"""A tokenized (and optionally patched) corpus on disk, read through memory maps.

Layout of one store directory (all little-endian, written once, then renamed into place):

- ``tokens.u16``   every document's ``BOS bytes... EOS`` ids, concatenated        ``[T]``
- ``doc_tokens.i64`` token offsets of the documents                              ``[D + 1]``
- ``lengths.i32``  each document's patch lengths (patched alone, ``include_next_token=False``)
- ``doc_patches.i64`` patch offsets of the documents                             ``[D + 1]``
- ``meta.json``    counts, the fingerprints that name the store and ``digest``, a hash of
  the stored tokens and patch lengths (a resumed run checks it: same digest, same rows)

Stores are keyed by the source fingerprint and the patcher-config fingerprint, so a store is
computed once per (corpus, patcher) and reused. A patcher whose model reads a prepared stream
(``prepare_document(tokens_N) -> tokens_M``, e.g. ``bpe`` inserting its delimiter after every
piece) has each document prepared before it is stored and patched: ``tokens.u16`` then holds the
prepared stream, which is what the model reads and predicts. ``online`` stores hold tokens only
and patch each document when it is read. Building writes into a temporary directory and renames it, so a crash
never leaves a half-written store under the final name.

Building streams: documents are read one at a time and written in order, tokenized and patched
in ``[data] workers`` processes (an entropy patcher's model is the expensive part) with a bounded
number of chunks in flight, so memory never holds the corpus. Patching runs one torch thread per
process in every case, so the bytes of a store do not depend on the number of workers.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from blt.data.sources import DataError
from blt.tokens import encode

STORE_VERSION = 1
# Parallel building: documents go to the workers in chunks of at most CHUNK_DOCS documents or
# CHUNK_BYTES bytes; a corpus whose first PARALLEL_MIN_DOCS documents (or PARALLEL_MIN_BYTES)
# are all there is is built in this process.
CHUNK_DOCS = 32
CHUNK_BYTES = 1 << 20
PARALLEL_MIN_DOCS = 64
PARALLEL_MIN_BYTES = 4 << 20
PROGRESS_AFTER_S = 2.0


def default_cache_dir() -> Path:
    return Path(os.environ.get("BLT_CACHE_DIR") or Path.home() / ".cache" / "blt-lab") / "data"


def patch_document(patcher: Any, tokens_N: torch.Tensor) -> np.ndarray:
    """Patch one (prepared) document alone (``include_next_token=False``): ``int32[P]`` summing to
    ``N``. A patcher's ``patch_prepared``, when it has one, is its rule on the prepared stream."""
    patch = getattr(patcher, "patch_prepared", None) or patcher.patch
    lengths = patch(tokens_N, include_next_token=False).lengths
    lengths = lengths[lengths > 0].to(torch.int32).numpy()
    if int(lengths.sum()) != tokens_N.numel():
        raise DataError(f"patcher returned lengths summing to {int(lengths.sum())} for a document of {tokens_N.numel()} tokens")
    return lengths


class Store:
    """Read access to a built store: ``doc_tokens(i)`` and ``doc_lengths(i)`` as numpy arrays."""

    def __init__(self, path: Path, patcher: Any | None = None) -> None:
        self.path = path
        self.meta = json.loads((path / "meta.json").read_text())
        if self.meta.get("version") != STORE_VERSION:
            raise DataError(f"data cache {path} has version {self.meta.get('version')}, expected {STORE_VERSION}; delete it")
        self.tokens = np.memmap(path / "tokens.u16", dtype=np.uint16, mode="r") if self.meta["n_tokens"] else np.zeros(0, np.uint16)
        self.doc_offsets = np.memmap(path / "doc_tokens.i64", dtype=np.int64, mode="r")
        self.patched = bool(self.meta["patched"])
        if self.patched:
            self.lengths = np.memmap(path / "lengths.i32", dtype=np.int32, mode="r")
            self.patch_offsets = np.memmap(path / "doc_patches.i64", dtype=np.int64, mode="r")
        self.patcher = patcher

    @property
    def n_docs(self) -> int:
        return len(self.doc_offsets) - 1

    @property
    def n_tokens(self) -> int:
        return int(self.meta["n_tokens"])

    def doc_tokens(self, i: int) -> np.ndarray:
        return self.tokens[self.doc_offsets[i] : self.doc_offsets[i + 1]]

    def doc_lengths(self, i: int) -> np.ndarray:
        if self.patched:
            return self.lengths[self.patch_offsets[i] : self.patch_offsets[i + 1]]
        if self.patcher is None:
            raise DataError("this data store holds no patch lengths and no patcher was given")
        return patch_document(self.patcher, torch.from_numpy(self.doc_tokens(i).astype(np.int64)))

    def avg_patch_size(self) -> float | None:
        """Mean patch length over the whole store (``None`` for an online store)."""
        return self.meta["n_tokens"] / self.meta["n_patches"] if self.patched else None


def resolve_workers(workers: int | None) -> int:
    """``[data] workers``: None is the CPU count, at most 4."""
    return workers if workers is not None else max(1, min(4, os.cpu_count() or 1))


def tokenize_document(data: bytes, patcher: Any | None, prepare: Callable[[torch.Tensor], torch.Tensor] | None
                      ) -> tuple[np.ndarray, np.ndarray | None]:
    """One document's stored arrays: tokens ``uint16[N]`` (prepared when ``prepare`` is given) and,
    with a patcher, its patch lengths ``int32[P]`` (:func:`patch_document`)."""
    ids = encode(data)
    if prepare is not None:
        ids = prepare(ids)
    tokens = ids.to(torch.int32).numpy().astype(np.uint16)
    return tokens, (patch_document(patcher, ids) if patcher is not None else None)


# Worker processes receive the patcher once (inherited: they are forked) and then
# chunks of documents; they return each document's arrays in order.
_WORKER: tuple[Any, Any] | None = None


def _init_worker(patcher: Any, prepare: Any) -> None:
    global _WORKER
    torch.set_num_threads(1)
    _WORKER = (patcher, prepare)


def _tokenize_chunk(chunk: list[bytes]) -> list[tuple[np.ndarray, np.ndarray | None]]:
    assert _WORKER is not None
    return [tokenize_document(data, *_WORKER) for data in chunk]


class _one_thread:
    """Patch with one torch thread in this process as the workers do, so a model-based patcher's
    floating-point results, and hence the store's bytes, do not depend on ``workers``."""

    def __enter__(self) -> None:
        self.before = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.before)


def _chunks(docs: Iterator[bytes]) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    size = 0
    for data in docs:
        chunk.append(data)
        size += len(data)
        if len(chunk) >= CHUNK_DOCS or size >= CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _can_fork_pool() -> bool:
    """Workers are forked (they inherit the patcher, whatever it holds, without pickling), which
    is safe on Linux; elsewhere, and inside a daemonic process (a job pool's worker, which may not
    have children), the store is built in this process."""
    import multiprocessing as mp

    return sys.platform.startswith("linux") and not mp.current_process().daemon


def _serial(docs: Iterable[bytes], patcher: Any | None, prepare: Any) -> Iterator[tuple[bytes, np.ndarray, np.ndarray | None]]:
    with _one_thread():
        for data in docs:
            yield (data, *tokenize_document(data, patcher, prepare))


def _tokenized(docs: Iterable[bytes], patcher: Any | None, prepare: Any, workers: int
               ) -> Iterator[tuple[bytes, np.ndarray, np.ndarray | None]]:
    """``(data, tokens, lengths)`` per document, in order. With ``workers > 1`` and more than the
    first ``PARALLEL_MIN_DOCS`` documents (or ``PARALLEL_MIN_BYTES``), a process pool does the work:
    chunks go in and come out in order, at most ``2 * workers`` chunks in flight, so memory stays
    bounded by a few chunks (or the largest document) whatever the corpus's size. A worker that
    dies (killed, out of memory) fails the build with BrokenProcessPool instead of hanging it."""
    it = iter(docs)
    head: list[bytes] = []
    size = 0
    for data in it:
        head.append(data)
        size += len(data)
        if len(head) >= PARALLEL_MIN_DOCS or size >= PARALLEL_MIN_BYTES:
            break
    else:
        workers = 1  # few documents: starting processes costs more than it saves
    if workers <= 1 or not _can_fork_pool():
        yield from _serial(itertools.chain(head, it), patcher, prepare)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"), initializer=_init_worker,
                             initargs=(patcher, prepare)) as pool:
        pending: collections.deque = collections.deque()
        try:
            for chunk in _chunks(itertools.chain(head, it)):
                pending.append((chunk, pool.submit(_tokenize_chunk, chunk)))
                if len(pending) >= 2 * workers:
                    done, future = pending.popleft()
                    yield from ((d, *r) for d, r in zip(done, future.result(), strict=True))
            while pending:
                done, future = pending.popleft()
                yield from ((d, *r) for d, r in zip(done, future.result(), strict=True))
        finally:
            for _, future in pending:  # an error (or an abandoned build): drop queued chunks
                future.cancel()


class _BuildProgress:
    """Documents and bytes read so far, on a rich status line that appears only when building has
    taken ``PROGRESS_AFTER_S`` seconds and stderr is a terminal."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label, self.enabled = label, enabled
        self.docs = self.bytes = 0
        self.started = time.monotonic()
        self._next_check = self.started + PROGRESS_AFTER_S
        self._bar: Any = None

    def advance(self, n_bytes: int) -> None:
        self.docs += 1
        self.bytes += n_bytes
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + 0.2
        if self._bar is None:
            if not self.enabled:
                self._next_check = float("inf")
                return
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            console = Console(stderr=True)
            if not console.is_terminal:
                self._next_check = float("inf")
                return
            self._bar = Progress(SpinnerColumn(), TextColumn(f"[bold]{self.label}"), TextColumn("{task.fields[info]}"),
                                 TimeElapsedColumn(), console=console, transient=True)
            self._task = self._bar.add_task(self.label, total=None, info="")
            self._bar.start()
        from rich.filesize import decimal

        rate = self.bytes / max(now - self.started, 1e-9)
        self._bar.update(self._task, info=f"{self.docs:,} documents, {decimal(self.bytes)} ({decimal(int(rate))}/s)")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def build_store(docs: Iterable[tuple[str, bytes]], dest: Path, patcher: Any | None, meta: dict[str, Any],
                prepare: Callable[[torch.Tensor], torch.Tensor] | None = None, *, workers: int = 1,
                progress: bool = True) -> Path:
    """Tokenize (``prepare`` each document when given, and patch when ``patcher`` is given)
    ``docs`` into a new store at ``dest``, with ``workers`` processes (1: in this process; the
    bytes written are the same for any number). ``progress``: show a status line on a terminal
    when building is slow.

    Raises DataError when no document has text. Returns ``dest``. Safe against concurrent
    builders (ranks): the first rename wins, later builders discard their copy.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    bar = _BuildProgress(f"data store: {meta.get('split', '')}", progress)
    try:
        n_tokens = n_patches = n_docs = 0
        digest = hashlib.sha256()
        zero = np.int64(0).tobytes()
        with open(tmp / "tokens.u16", "wb") as ftok, open(tmp / "lengths.i32", "wb") as flen, \
                open(tmp / "doc_tokens.i64", "wb") as fdoc, open(tmp / "doc_patches.i64", "wb") as fpat:
            fdoc.write(zero)
            fpat.write(zero)
            for data, tokens, lengths in _tokenized((data for _doc_id, data in docs), patcher, prepare, workers):
                ftok.write(tokens.tobytes())
                n_tokens += len(tokens)
                fdoc.write(np.int64(n_tokens).tobytes())
                if lengths is not None:
                    flen.write(lengths.tobytes())
                    n_patches += len(lengths)
                    fpat.write(np.int64(n_patches).tobytes())
                    digest.update(np.int64(len(lengths)).tobytes())
                    digest.update(lengths)
                digest.update(np.int64(len(tokens)).tobytes())
                digest.update(tokens)
                n_docs += 1
                bar.advance(len(data))
        if n_docs == 0:
            raise DataError(f"the corpus {meta.get('source')!r} ({meta.get('split')} split) has no text: every document "
                            "is empty or whitespace; check [data] source and text_field")
        full = {**meta, "version": STORE_VERSION, "n_docs": n_docs, "n_tokens": n_tokens, "n_patches": n_patches,
                "patched": patcher is not None, "prepared": prepare is not None, "digest": digest.hexdigest()[:16]}
        (tmp / "meta.json").write_text(json.dumps(full, indent=1))
        try:
            os.rename(tmp, dest)
        except OSError:
            if not (dest / "meta.json").is_file():
                raise
    finally:
        bar.close()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


__all__ = ["Store", "build_store", "default_cache_dir", "patch_document", "resolve_workers", "tokenize_document"]
