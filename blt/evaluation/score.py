"""Per-byte scores of a trained model: rolling document log-likelihood and continuation log-likelihood.

Every score comes from the model family's optional ``target_nats(tokens, patch_lengths, targets)``
(nats per target position, summing to the training loss), so it holds for any model that has it:
BLT variants, the byte-level and the BPE-token baselines.

**The stream.** A document is ``BOS bytes... EOS`` (``blt.tokens.encode``), prepared as the data
pipeline prepares it when the patcher reads a prepared stream (``patcher.prepare_document``: the
``bpe`` patcher inserts its delimiter after every piece), and patched alone as the data store
patches it (:func:`blt.data.store.patch_document`). Windows take their patch lengths from these
document patches (:func:`blt.data.packing.pack_row`, as training rows do).

**Rolling windows** (as lm-evaluation-harness's ``loglikelihood_rolling``): the targets of the
stream are cut into consecutive chunks of at most ``seq_len``; a chunk ending at target ``e`` is
scored in one row holding the ``seq_len`` positions before ``e`` (fewer at the start of the
stream), so each target is scored exactly once with as much previous context as fits in a row.

**Crediting targets to bytes.** A target that is a byte is that byte's score. A target that is
not a byte of the text (a BPE delimiter: the model predicts where a piece ends) is credited to the
byte before it, so a document's total nats is exactly what bits per byte count
(``sum nats / ln 2 / bytes``). The closing EOS is not scored (a text's likelihood, as lm-eval
defines it, has no end-of-text term), so :meth:`Scorer.document_nats` sums to the trainer's
``evaluate()`` on one document minus its EOS term (:meth:`Scorer.stream_nats` keeps every target).

**Continuations.** ``loglikelihood(context, continuation)`` scores the stream of
``context + continuation`` (prepared and patched as one document, so a BPE stream is tokenised as
a whole) and sums the nats credited to the continuation's bytes; the first window of the
continuation has as much context as fits. A BPE token spanning the boundary between context and
continuation counts for the continuation (the BPE-token baseline credits a token's loss to its
last byte), as a delimiter closing the continuation's last piece does. Greedy: every target credited to the continuation is
the argmax of the model's prediction: for byte-logit models the argmax byte (delimiters included
on a delimited stream); for a model with ``target_greedy`` (the BPE-token baseline) the argmax
token, for each token credited to the continuation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from blt.core.errors import InputError
from blt.tokens import OFFSET, PAD_ID, encode

Progress = Callable[[int, int], None]  # progress(windows_done, windows_total), after every batch


@attrs.frozen
class Stream:
    """A prepared, patched document: ``tokens int64[M]``, ``lengths int64[P]`` (sum M) and, per
    stream position, the index of the byte its target is credited to (-1: not scored)."""

    tokens: np.ndarray
    lengths: np.ndarray
    credit: np.ndarray
    n_bytes: int


def credit_map(tokens: np.ndarray) -> np.ndarray:
    """Byte index each stream position's target is credited to: a byte itself; any other token but
    the last (a delimiter, ...) the byte before it, or the first byte when none is before; the last
    position (EOS) and position 0 (BOS, never a target) -1."""
    is_byte = tokens >= OFFSET
    index = np.cumsum(is_byte) - 1  # byte index of a byte; the byte before, for a non-byte
    n_bytes = int(is_byte.sum())
    credit = np.where(index >= 0, index, 0).astype(np.int64)
    credit[0] = -1
    if len(tokens) > 1:
        credit[-1] = -1
    if n_bytes == 0:
        credit[:] = -1
    return credit


def _window_spans(start: int, end: int, seq_len: int) -> list[tuple[int, int, int]]:
    """``(a, s, e)`` per window: targets at stream positions ``[s, e)`` in one row of inputs
    ``[a, e - 1)``, ``a = max(0, e - 1 - seq_len)``; chunks of ``seq_len`` targets from ``start``."""
    spans = []
    for s in range(start, end, seq_len):
        e = min(end, s + seq_len)
        spans.append((max(0, e - 1 - seq_len), s, e))
    return spans


class Scorer:
    """Scores documents and continuations with a trained model (module docstring).

    ``Scorer.from_run(path)``: a run directory, its export or a checkpoint (``load_trained``);
    ``Scorer(config, patcher, model)``: pieces already built. ``seq_len``: the row length (default
    the run's ``[data] seq_len``). The model runs in eval mode without gradients on its own device.
    """

    def __init__(self, config: Any, patcher: Any, model: torch.nn.Module, *, seq_len: int | None = None) -> None:
        self.config, self.patcher, self.model = config, patcher, model
        self.seq_len = int(seq_len if seq_len is not None else config.data.seq_len)
        if self.seq_len < 1:
            raise InputError(f"seq_len must be at least 1, got {self.seq_len}")
        if not callable(getattr(model, "target_nats", None)):
            kind = getattr(getattr(config, "model", None), "kind", type(model).__name__)
            raise InputError(f"model {kind!r} has no target_nats(tokens, patch_lengths, targets): it cannot be scored per byte")
        model.eval()

    @classmethod
    def from_run(cls, path: str | Path, *, seq_len: int | None = None, device: str | torch.device | None = None) -> Scorer:
        """A run directory, its export or a checkpoint; the model moved to ``device`` when given (default CPU)."""
        from blt.train.weights import load_trained

        config, _registry, patcher, model = load_trained(path)
        if device is not None:
            model = model.to(torch.device(device))
        return cls(config, patcher, model, seq_len=seq_len)

    @property
    def device(self) -> torch.device:
        first = next(self.model.parameters(), None)
        return first.device if first is not None else torch.device("cpu")

    # --- streams ----------------------------------------------------------------------------
    def stream(self, data: bytes) -> Stream:
        """``data`` as the model reads it: ``BOS bytes EOS``, prepared and patched as the data store does."""
        from blt.data.store import patch_document

        ids = encode(bytes(data))
        prepare = getattr(self.patcher, "prepare_document", None)
        if prepare is not None:
            ids = prepare(ids)
        lengths = patch_document(self.patcher, ids).astype(np.int64)
        tokens = ids.numpy().astype(np.int64)
        return Stream(tokens, lengths, credit_map(tokens), int((tokens >= OFFSET).sum()))

    # --- public scores ------------------------------------------------------------------------
    def document_nats(self, docs: Sequence[bytes], *, batch_size: int = 8, progress: Progress | None = None) -> list[np.ndarray]:
        """Nats of every byte of each document (``float64[len(doc)]``), rolling windows, EOS not scored."""
        streams = [self.stream(d) for d in docs]
        jobs = [(i, 1, len(s.tokens) - 1) for i, s in enumerate(streams)]
        per_target = self._score(streams, jobs, batch_size, progress, greedy=False)[0]
        out = []
        for s, nats in zip(streams, per_target):
            byte_nats = np.zeros(s.n_bytes, dtype=np.float64)
            keep = s.credit >= 0
            np.add.at(byte_nats, s.credit[keep], nats[keep])
            out.append(byte_nats)
        return out

    def stream_nats(self, docs: Sequence[bytes], *, batch_size: int = 8, progress: Progress | None = None) -> list[np.ndarray]:
        """Nats of every target of each document's stream (``float64[M - 1]``, positions 1..M-1,
        delimiters and EOS included): the terms the trainer's ``evaluate()`` sums."""
        streams = [self.stream(d) for d in docs]
        jobs = [(i, 1, len(s.tokens)) for i, s in enumerate(streams)]
        return [nats[1:] for nats in self._score(streams, jobs, batch_size, progress, greedy=False)[0]]

    def continuation_nats(self, pairs: Sequence[tuple[bytes, bytes]], *, batch_size: int = 8,
                          progress: Progress | None = None) -> list[float]:
        """Nats of each continuation given BOS + context (the negated log-likelihood)."""
        return [nats for nats, _ in self._continuations(pairs, batch_size, progress, greedy=False)]

    def loglikelihood(self, pairs: Sequence[tuple[bytes, bytes]], *, batch_size: int = 8,
                      progress: Progress | None = None) -> list[tuple[float, bool]]:
        """``(sum of ln p of the continuation's bytes given BOS + context, greedy reproduces it)`` per pair."""
        return [(-nats, bool(greedy)) for nats, greedy in self._continuations(pairs, batch_size, progress, greedy=True)]

    # --- machinery ----------------------------------------------------------------------------
    def _continuations(self, pairs: Sequence[tuple[bytes, bytes]], batch_size: int, progress: Progress | None,
                       greedy: bool) -> list[tuple[float, bool]]:
        streams, jobs, firsts = [], [], []
        for i, (context, continuation) in enumerate(pairs):
            context, continuation = bytes(context), bytes(continuation)
            s = self.stream(context + continuation)
            in_cont = s.credit >= len(context)
            first = int(np.argmax(in_cont)) if in_cont.any() else len(s.tokens) - 1
            streams.append(s)
            firsts.append(in_cont)
            jobs.append((i, first, len(s.tokens) - 1))
        nats_list, ok_list = self._score(streams, jobs, batch_size, progress, greedy=greedy)
        out = []
        for in_cont, nats, ok in zip(firsts, nats_list, ok_list):
            out.append((float(nats[in_cont].sum()), bool(ok[in_cont].all())))
        return out

    @torch.no_grad()
    def _score(self, streams: Sequence[Stream], jobs: Sequence[tuple[int, int, int]], batch_size: int,
               progress: Progress | None, greedy: bool) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per stream, nats (``float64[M]``) and greedy flags (``bool[M]``) of the targets at stream
        positions ``[start, end)`` of each job ``(stream index, start, end)`` (0 / True elsewhere)."""
        from blt.data.packing import pack_row, trim_front

        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        nats = [np.zeros(len(s.tokens), dtype=np.float64) for s in streams]
        oks = [np.ones(len(s.tokens), dtype=bool) for s in streams]
        windows = []  # (stream index, a, s, e, row tokens int64[e - a], row lengths)
        for i, start, end in jobs:
            st = streams[i]
            for a, s, e in _window_spans(start, end, self.seq_len):
                tokens, lengths = pack_row([(st.tokens[a:], trim_front(st.lengths, a))], e - a)
                windows.append((i, a, s, e, tokens, lengths))
        # longest rows first: rows of a batch have similar lengths (less padding); a stable order
        order = sorted(range(len(windows)), key=lambda w: -(windows[w][3] - windows[w][1]))
        done = 0
        for b in range(0, len(order), batch_size):
            chunk = [windows[w] for w in order[b : b + batch_size]]
            width = max(len(w[4]) for w in chunk)
            rows = [pack_row([(w[4], w[5])], width) for w in chunk]  # pad, growing the last patch
            toks = torch.from_numpy(np.stack([r[0] for r in rows])).to(self.device)
            lengths = _pad_lengths([r[1] for r in rows]).to(self.device)
            row_nats, row_ok = self._rows(toks[:, :-1], lengths, toks[:, 1:], greedy)
            for j, (i, a, s, e, _t, _l) in enumerate(chunk):
                # target index t of the row is stream position a + 1 + t
                nats[i][s:e] = row_nats[j, s - a - 1 : e - a - 1]
                oks[i][s:e] = row_ok[j, s - a - 1 : e - a - 1]
            done += len(chunk)
            if progress is not None:
                progress(done, len(windows))
        return nats, oks

    def _rows(self, tokens: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor,
              greedy: bool) -> tuple[np.ndarray, np.ndarray]:
        model = self.model
        row_nats = model.target_nats(tokens, lengths, targets).double()
        if not greedy:
            ok = torch.ones_like(targets, dtype=torch.bool)
        elif callable(getattr(model, "target_greedy", None)):
            ok = model.target_greedy(tokens, lengths, targets)
        else:
            logits = model(tokens, lengths)
            if not (isinstance(logits, torch.Tensor) and logits.dim() == 3):
                kind = getattr(getattr(self.config, "model", None), "kind", type(model).__name__)
                raise InputError(f"model {kind!r} has neither byte logits nor target_greedy: greedy decoding cannot be checked")
            ok = (logits.argmax(-1) == targets) | (targets == PAD_ID)
        return row_nats.cpu().numpy(), ok.cpu().numpy()


def _pad_lengths(rows: Sequence[np.ndarray]) -> torch.Tensor:
    from blt.data.packing import pad_lengths

    return torch.from_numpy(pad_lengths(rows))


def bits_per_byte(total_nats: float, n_bytes: int) -> float:
    """``total nats / ln 2 / bytes`` (``nan`` for no bytes)."""
    return total_nats / math.log(2.0) / n_bytes if n_bytes else float("nan")


__all__ = ["Scorer", "Stream", "bits_per_byte", "credit_map"]
