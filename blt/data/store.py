"""A tokenized (and optionally patched) corpus on disk, read through memory maps.

Layout of one store directory (all little-endian, written once, then renamed into place):

- ``tokens.u16``   every document's ``BOS bytes... EOS`` ids, concatenated        ``[T]``
- ``doc_tokens.i64`` token offsets of the documents                              ``[D + 1]``
- ``lengths.i32``  each document's patch lengths (patched alone, ``include_next_token=False``)
- ``doc_patches.i64`` patch offsets of the documents                             ``[D + 1]``
- ``meta.json``    counts and the fingerprints that name the store

Stores are keyed by the source fingerprint and the patcher-config fingerprint, so a store is
computed once per (corpus, patcher) and reused. A patcher whose model reads a prepared stream
(``prepare_document(tokens_N) -> tokens_M``, e.g. ``bpe`` inserting its delimiter after every
piece) has each document prepared before it is stored and patched: ``tokens.u16`` then holds the
prepared stream, which is what the model reads and predicts. ``online`` stores hold tokens only
and patch each document when it is read. Building writes into a temporary directory and renames it, so a crash
never leaves a half-written store under the final name.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from blt.data.sources import DataError
from blt.tokens import encode

STORE_VERSION = 1


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
        self.doc_offsets = np.fromfile(path / "doc_tokens.i64", dtype=np.int64)
        self.patched = bool(self.meta["patched"])
        if self.patched:
            self.lengths = np.memmap(path / "lengths.i32", dtype=np.int32, mode="r")
            self.patch_offsets = np.fromfile(path / "doc_patches.i64", dtype=np.int64)
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


def build_store(docs: Iterable[tuple[str, bytes]], dest: Path, patcher: Any | None, meta: dict[str, Any],
                prepare: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Path:
    """Tokenize (``prepare`` each document when given, and patch when ``patcher`` is given)
    ``docs`` into a new store at ``dest``.

    Raises DataError when no document has text. Returns ``dest``. Safe against concurrent
    builders (ranks): the first rename wins, later builders discard their copy.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        n_tokens = n_patches = n_docs = 0
        doc_offsets, patch_offsets = [0], [0]
        with open(tmp / "tokens.u16", "wb") as ftok, open(tmp / "lengths.i32", "wb") as flen:
            for _doc_id, data in docs:
                ids = encode(data)
                if prepare is not None:
                    ids = prepare(ids)
                ftok.write(ids.to(torch.int32).numpy().astype(np.uint16).tobytes())
                n_tokens += ids.numel()
                doc_offsets.append(n_tokens)
                if patcher is not None:
                    lengths = patch_document(patcher, ids)
                    flen.write(lengths.tobytes())
                    n_patches += len(lengths)
                    patch_offsets.append(n_patches)
                n_docs += 1
        if n_docs == 0:
            raise DataError(f"the corpus {meta.get('source')!r} ({meta.get('split')} split) has no text: every document is empty or whitespace")
        np.asarray(doc_offsets, dtype=np.int64).tofile(tmp / "doc_tokens.i64")
        np.asarray(patch_offsets, dtype=np.int64).tofile(tmp / "doc_patches.i64")
        full = {**meta, "version": STORE_VERSION, "n_docs": n_docs, "n_tokens": n_tokens, "n_patches": n_patches,
                "patched": patcher is not None, "prepared": prepare is not None}
        (tmp / "meta.json").write_text(json.dumps(full, indent=1))
        try:
            os.rename(tmp, dest)
        except OSError:
            if not (dest / "meta.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


__all__ = ["Store", "build_store", "default_cache_dir", "patch_document"]
