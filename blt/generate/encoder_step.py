"""The shared part of a local encoder's incremental step: one byte at a time, patch vectors on close.

Byte states do not depend on patching (the encoder's self-attention sees bytes only), so each new
byte runs through the encoder layers with a windowed cache. A patch vector depends on all of the
patch's bytes, so it is computed when the patch closes (when the next position starts a new
patch), from the stored states of its bytes. Each encoder plugin subclasses :class:`EncoderStep`
with its own ``close`` (in its plugin file); this module keeps what they share.

Hash n-gram embeddings need only the last ``max(hash_sizes)`` tokens (zero before position 0, as
the model's left padding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from blt.generate.local_stack import ByteHistory, LocalStack
from blt.attention.backend import AttentionBackend
from blt.model.hash_embedding import HashNgramEmbedding, prime_powers


class HashRows:
    """The hash n-gram embedding of the newest position only, from its last ``g_max`` ids (what
    :meth:`HashNgramEmbedding.forward` computes at that position: the same rows, summed).

    On the CPU the windows' hashes are one int64 ``mm`` with the ``[g_max, T]`` prime-power matrix
    (int64 products and sums wrap, as the model's do; CUDA has no integer matmul, so there it is
    the model's multiply and sum), and the table rows are gathered by one
    ``index_select`` and summed: fewer calls than ``embedding_bag`` for a single position."""

    def __init__(self, hashed: HashNgramEmbedding, device: torch.device) -> None:
        g_max = max(hashed.group_sizes)
        coefficients = [[0] * (g_max - g) + prime_powers(f, g) for f in range(hashed.functions) for g in hashed.group_sizes]
        self.coefficients_GT = torch.tensor(coefficients, dtype=torch.int64, device=device).t().contiguous()
        self.offsets_T = torch.arange(hashed.num_tables, device=device) * hashed.buckets
        self.hashed = hashed

    def __call__(self, recent_BG: torch.Tensor) -> torch.Tensor:
        weight = self.hashed.weight
        if self.hashed.num_tables == 0:
            return weight.new_zeros(recent_BG.shape[0], weight.shape[1])
        if recent_BG.device.type == "cpu":
            hashed_BT = torch.mm(recent_BG, self.coefficients_GT)
        else:
            hashed_BT = (recent_BG[:, :, None] * self.coefficients_GT).sum(1)
        rows_BT = torch.remainder(hashed_BT, self.hashed.buckets).add_(self.offsets_T)
        return weight.index_select(0, rows_BT.view(-1)).view(*rows_BT.shape, -1).sum(1)


class RecentTokens:
    """The last ``g`` token ids of every row ``[B, g]`` (zeros before position 0, the model's left
    padding), as a view of a buffer that holds every position: one write per step, no shifting."""

    def __init__(self, batch: int, g: int, total: int, device: torch.device) -> None:
        self.g = g
        self.buffer_BN = torch.zeros(batch, g - 1 + max(total, 1), dtype=torch.long, device=device)

    def push(self, t: int, tokens_B: torch.Tensor) -> torch.Tensor:
        """Write position ``t``'s tokens; the window ending at t."""
        if self.g - 1 + t >= self.buffer_BN.shape[1]:  # a stream past ``total``: grow
            self.buffer_BN = torch.cat([self.buffer_BN, torch.zeros_like(self.buffer_BN)], dim=1)
        self.buffer_BN.select(1, self.g - 1 + t).copy_(tokens_B)
        return self.buffer_BN.narrow(1, t, self.g)


class EncoderStep:
    """Shared part: embeddings, the cached layer stack, the history of byte states and patch starts.

    ``recorded_layers``: how many of the last layers' states ``close`` needs (kept per byte);
    ``window``: how many patches back a closing patch reads (its cross-attention window)."""

    def __init__(self, encoder: nn.Module, recorded_layers: int, window: int, batch: int, total: int,
                 backend: AttentionBackend, like: torch.Tensor) -> None:
        self.encoder, self.backend, self.window = encoder, backend, window
        self.recorded_from = len(encoder.layers) - recorded_layers  # states of layers >= this are kept
        cfg = encoder.config
        self.stack = LocalStack(encoder.layers, cfg.window, encoder.rope_theta, batch, total, backend, like,
                                block_documents=cfg.block_documents)
        hashed = encoder.hash_embeddings is not None
        self.recent = RecentTokens(batch, max(encoder.hash_embeddings.group_sizes) if hashed else 1, total, like.device)
        self.hash_rows = HashRows(encoder.hash_embeddings, like.device) if hashed else None
        self.history = ByteHistory()
        self.prev_pid_B = torch.full((batch,), -1, dtype=torch.long, device=like.device)
        self.starts_BW = torch.zeros(batch, window, dtype=torch.long, device=like.device)  # start of patch q at q % W
        self.oldest_B = torch.zeros(batch, dtype=torch.long, device=like.device)
        self.oldest = 0

    def step(self, tokens_B: torch.Tensor, t: int, pid_B: torch.Tensor, doc_B: torch.Tensor) -> torch.Tensor:
        """Byte t of every row (in patch ``pid_B``) -> its final encoder state ``[B, 1, d]``."""
        h_BD = self.encoder.embed_tokens.weight.index_select(0, tokens_B)
        if self.hash_rows is not None:
            h_BD = h_BD + self.hash_rows(self.recent.push(t, tokens_B))
        self.stack.begin(t, doc_B)
        kept = []
        for i in range(len(self.encoder.layers)):
            h_BD = self.stack.layer(i, h_BD)
            if i >= self.recorded_from:
                kept.append(h_BD)
        if pid_B is not self.prev_pid_B:  # new patch ids (the generator makes a new tensor when they move on)
            if self.window == 1:  # each patch reads its own bytes only: the oldest needed is its start
                self.oldest_B = torch.where(pid_B != self.prev_pid_B, t, self.oldest_B)
            else:
                slot_B1 = (pid_B % self.window)[:, None]
                new_B1 = (pid_B != self.prev_pid_B)[:, None]
                self.starts_BW.scatter_(1, slot_B1, torch.where(new_B1, t, self.starts_BW.gather(1, slot_B1)))
                first_needed_B1 = ((pid_B - self.window + 1).clamp(min=0) % self.window)[:, None]
                self.oldest_B = self.starts_BW.gather(1, first_needed_B1)[:, 0]
            self.prev_pid_B = pid_B
            self.oldest = int(self.oldest_B.min())
        self.history.append(kept[0][:, None] if len(kept) == 1 else torch.stack(kept, dim=1), pid_B)
        self.history.trim(self.oldest)
        return h_BD[:, None]

    def snapshot(self) -> tuple:
        """The state after the last ``step`` (see :meth:`LocalStack.snapshot`): what
        :meth:`restore` needs to continue from here again. Subclasses with state of their own
        extend both."""
        # (the recent-token buffer needs no mark: a window ending at t reads positions <= t only,
        # and a position after the mark is written again before any window reads it)
        return (self.stack.snapshot(), self.history.snapshot(), self.prev_pid_B,
                self.starts_BW.clone(), self.oldest_B, self.oldest)

    def restore(self, mark: tuple) -> None:
        stack, history, self.prev_pid_B, starts_BW, self.oldest_B, self.oldest = mark
        self.stack.restore(stack)
        self.history.restore(history)
        self.starts_BW.copy_(starts_BW)

    def commit(self) -> None:
        """No mark taken so far will be restored."""
        self.stack.commit()

    def own_span(self, rows_C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """With ``window == 1`` (each patch reads its own bytes only): ``(states [C, L, S, d], own
        [C, L])`` of positions from the earliest closing patch's start to this byte, ``own`` marking
        each row's own patch's bytes (None for one row: its span is exactly its patch); else None."""
        if self.window != 1:
            return None
        if rows_C.shape[0] == 1:
            b = int(rows_C)
            return self.history.row_span(int(self.oldest_B[b]), b), None
        starts_C = self.oldest_B.index_select(0, rows_C)
        lo = int(starts_C.min())
        states_CLSD = self.history.span(lo, rows_C, ids=False)[0]
        positions_L = torch.arange(lo, lo + states_CLSD.shape[1], device=starts_C.device)
        return states_CLSD, positions_L >= starts_C[:, None]

    def closing_span(self, rows_C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For rows whose patch closes at this byte: ``(states [C, L, S, d], patch ids [C, L], own patch [C])``."""
        lo = int(self.oldest_B.index_select(0, rows_C).min())
        states_CLSD, ids_CL = self.history.span(lo, rows_C)
        return states_CLSD, ids_CL, self.prev_pid_B.index_select(0, rows_C)
