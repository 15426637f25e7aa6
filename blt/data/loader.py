"""Batches for training (shuffled, endless, resumable) and evaluation (in order, padded, finite).

The training stream visits documents in a seeded random order per epoch
(``permutation(seed, epoch)``) and cuts rows as described in :mod:`blt.data.packing`. Its whole
state is ``{"epoch", "doc", "offset", "rows", "store"}``: position ``offset`` tokens into the
``doc``-th document of epoch ``epoch``'s order, and the digest of the store's contents. Every rank
walks the same global rows (cheap: the store is memory-mapped) and keeps its own contiguous slice,
so the state is the same on every rank and a run resumes on any world size that divides the batch.

This holds for every corpus format alike, because training never reads the corpus files: it reads
the store built from them. *Resumable exactly* means: a run restored from a checkpoint's state
yields the same rows, in the same order, with the same patch lengths, as the run that was not
interrupted would have from that step on, so (with the weights, optimizer and RNG the trainer
restores) the same losses bit for bit. It requires the same store, which the digest checks: a
corpus file edited, replaced or reordered, or a changed patcher, gives another store, and
resuming from a state of the old one is refused instead of silently training on other rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import msgspec
import numpy as np
import torch

from blt.core.config import fingerprint
from blt.data.config import DataConfig
from blt.data.packing import pack_row, pad_lengths, trim_front
from blt.data.sources import DataError, iter_documents, source_fingerprint
from blt.data.store import Store, build_store, default_cache_dir, resolve_workers
from blt.tokens import PAD_ID
from blt.train.objective import target_byte_count


@attrs.frozen(eq=False)
class Batch:
    """One micro-batch for one rank.

    ``tokens``: ``LongTensor[B, N]`` inputs; ``targets``: ``LongTensor[B, N]`` next tokens (0 = pad,
    ignored); ``patch_lengths``: ``LongTensor[B, P]`` (rows sum to ``N + 1``, first patch 1);
    ``global_targets``: target bytes in the whole global batch (all ranks). Target *bytes* are the
    targets that are neither pad nor the BPE delimiter (BOS and EOS count): a delimiter target is
    predicted and scored, but it is not a byte of the text, so bits per byte do not divide by it.
    """

    tokens: torch.Tensor
    targets: torch.Tensor
    patch_lengths: torch.Tensor
    global_targets: int

    @property
    def n_targets(self) -> int:
        return target_byte_count(self.targets)


def patcher_fingerprint(patcher: Any, patcher_config: Any) -> str:
    """The config fingerprint plus what the config does not pin: a resolved default threshold, the
    weights of an entropy model, a tokenizer's vocabulary, whether documents are prepared
    (duck-typed: ``threshold``, ``relative_threshold``, ``model``, ``tokenizer``,
    ``prepare_document``). A retrained model, a recalibrated default or a changed stream thus never
    reuses stale tokens or patches."""
    import hashlib

    h = hashlib.sha256(fingerprint(patcher_config).encode())
    for name in ("threshold", "relative_threshold"):
        h.update(f"{name}={getattr(patcher, name, None)!r};".encode())
    model = getattr(patcher, "model", None)
    if isinstance(model, torch.nn.Module):
        for key, tensor in sorted(model.state_dict().items()):
            h.update(key.encode())
            h.update(tensor.detach().float().cpu().numpy().tobytes())
    tokenizer = getattr(patcher, "tokenizer", None)
    if tokenizer is not None and hasattr(tokenizer, "to_str"):
        h.update(tokenizer.to_str().encode())
    if getattr(patcher, "prepare_document", None) is not None:
        h.update(b"prepare_document;")
    return h.hexdigest()[:16]


def open_store(config: DataConfig, split: str, patcher: Any, patcher_config: Any, *, progress: bool = True) -> Store:
    """The store for ``split``: reused from the cache when present, else built (once) now, with
    ``[data] workers`` processes (``progress``: a status line on a terminal when that is slow)."""
    cache = Path(config.cache_dir).expanduser() if config.cache_dir else default_cache_dir()
    online = config.patches == "online"
    prepare = getattr(patcher, "prepare_document", None)
    if online:  # tokens only; prepared tokens still depend on the patcher
        tag = "online" if prepare is None else f"online-{patcher_fingerprint(patcher, patcher_config)}"
    else:
        tag = patcher_fingerprint(patcher, patcher_config)
    key = f"{split}-{source_fingerprint(config, split)}-{tag}"
    dest = cache / key
    if not (dest / "meta.json").is_file():
        meta = {"source": config.heldout if split == "heldout" and config.heldout else config.source, "split": split,
                "patcher": None if online else msgspec.to_builtins(patcher_config)}
        build_store(iter_documents(config, split), dest, None if online else patcher, meta, prepare,
                    workers=resolve_workers(config.workers), progress=progress)
    return Store(dest, patcher=patcher)


def _to_batch(rows: list[tuple[np.ndarray, np.ndarray]], rank: int, world: int) -> Batch:
    if len(rows) % world:
        raise DataError(f"batch of {len(rows)} rows does not split over {world} ranks; make [data] batch_size a multiple of {world}")
    per = len(rows) // world
    mine = rows[rank * per : (rank + 1) * per]
    toks = torch.from_numpy(np.stack([t for t, _ in mine]))
    global_targets = sum(target_byte_count(t[1:]) for t, _ in rows)
    return Batch(tokens=toks[:, :-1].contiguous(), targets=toks[:, 1:].contiguous(),
                 patch_lengths=torch.from_numpy(pad_lengths([p for _, p in mine])), global_targets=global_targets)


class TrainStream:
    """Endless shuffled rows of ``seq_len + 1`` tokens; ``state_dict``/``load_state_dict`` resume exactly."""

    def __init__(self, store: Store, seq_len: int, seed: int) -> None:
        if store.n_docs == 0:
            raise DataError("the training corpus has no documents")
        self.store, self.seq_len, self.seed = store, seq_len, seed
        self.epoch = self.doc = self.offset = self.rows = 0
        self._order_epoch, self._order = -1, np.zeros(0, dtype=np.int64)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"epoch": self.epoch, "doc": self.doc, "offset": self.offset, "rows": self.rows}
        if self.store.meta.get("digest"):
            state["store"] = self.store.meta["digest"]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``; refuses a state taken on a store with other contents (the corpus
        or the patcher changed), where the same position would be other rows."""
        saved, have = state.get("store"), self.store.meta.get("digest")
        if saved is not None and have is not None and saved != have:
            raise DataError(f"the training data changed since this checkpoint (store {saved}, now {have}: other "
                            "documents, tokens or patches), so it cannot resume exactly; restore the corpus, or "
                            "start afresh with --no-resume")
        self.epoch, self.doc, self.offset, self.rows = (int(state[k]) for k in ("epoch", "doc", "offset", "rows"))

    def order(self, epoch: int) -> np.ndarray:
        if epoch != self._order_epoch:
            self._order = np.random.default_rng([self.seed, epoch]).permutation(self.store.n_docs)
            self._order_epoch = epoch
        return self._order

    def next_row(self) -> tuple[np.ndarray, np.ndarray]:
        """``(tokens int64[seq_len + 1], lengths int64[P])``; advances the state by ``seq_len``."""
        total = self.seq_len + 1
        segments, got = [], 0
        epoch, doc, offset = self.epoch, self.doc, self.offset
        advanced = None
        while got < total:
            idx = int(self.order(epoch)[doc])
            toks = self.store.doc_tokens(idx)[offset:]
            segments.append((toks, trim_front(self.store.doc_lengths(idx), offset)))
            if advanced is None and got + len(toks) > self.seq_len:
                advanced = (epoch, doc, offset + self.seq_len - got)
            got += len(toks)
            doc, offset = doc + 1, 0
            if doc == self.store.n_docs:
                epoch, doc = epoch + 1, 0
        self.epoch, self.doc, self.offset = advanced
        self.rows += 1
        return pack_row(segments, total)

    def next_batch(self, batch_size: int, rank: int = 0, world: int = 1) -> Batch:
        return _to_batch([self.next_row() for _ in range(batch_size)], rank, world)


def spread_order(n: int) -> list[int]:
    """A fixed permutation of ``range(n)`` whose every prefix is spread over the whole range:
    ``i * step mod n`` with ``step`` the integer nearest ``n / phi`` that is coprime with ``n``
    (golden-ratio strides keep consecutive picks far apart). Deterministic, no random state."""
    import math

    if n <= 2:
        return list(range(n))
    step = max(1, round(n / 1.6180339887))
    while math.gcd(step, n) != 1:
        step += 1
    return [(i * step) % n for i in range(n)]


def eval_batches(store: Store, seq_len: int, batch_size: int, max_bytes: int | None = None,
                 rank: int = 0, world: int = 1) -> Iterator[Batch]:
    """Held-out rows, the last one padded, until ``max_bytes`` targets are covered.

    Without ``max_bytes`` every document is read in store order. With it, documents are read in
    :func:`spread_order`, so a capped evaluation samples the whole split (every source of a corpus
    stored source by source) rather than its first documents; the order is fixed by the store
    alone, so every variant and seed is scored on the same bytes.
    Every rank receives the same number of batches (empty rows are pad rows, contributing nothing).
    """
    rows: list[tuple[np.ndarray, np.ndarray]] = []
    covered = 0
    segments: list[tuple[np.ndarray, np.ndarray]] = []
    have = 0
    total = seq_len + 1

    def flush_rows(final: bool) -> Iterator[Batch]:
        nonlocal rows
        while len(rows) >= batch_size or (final and rows):
            chunk, rows = rows[:batch_size], rows[batch_size:]
            while len(chunk) < batch_size:
                chunk.append((np.full(total, PAD_ID, np.int64), np.array([1, seq_len], np.int64)))
            yield _to_batch(chunk, rank, world)

    order = range(store.n_docs) if max_bytes is None else spread_order(store.n_docs)
    for i in order:
        toks, lens = store.doc_tokens(i), store.doc_lengths(i)
        segments.append((toks, np.asarray(lens, np.int64)))
        have += len(toks)
        while have >= total and (max_bytes is None or covered < max_bytes):
            row = pack_row(segments, total)
            rows.append(row)
            covered += seq_len
            # the next row starts `seq_len` tokens later: drop what was consumed
            consumed, rest = seq_len, []
            for t, p in segments:
                if consumed >= len(t):
                    consumed -= len(t)
                    continue
                rest.append((t[consumed:], trim_front(p, consumed)))
                consumed = 0
            segments, have = rest, have - seq_len
        yield from flush_rows(False)
        if max_bytes is not None and covered >= max_bytes:
            break
    else:
        if have > 1:
            rows.append(pack_row(segments, total))
    yield from flush_rows(True)


__all__ = ["Batch", "TrainStream", "eval_batches", "open_store"]
