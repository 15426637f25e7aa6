"""The global transformer, one patch at a time, with a KV cache over the row's earlier patches.

A step runs the patches that close at this byte. Row b's new patch is its ``n_b``-th (RoPE
position ``n_b``, cache slot ``n_b``); with ``block_documents`` it belongs to the document counted
by the EOS-marked patches closed before it and attends only that document's patches
(``patch_block_causal``), else all earlier patches (``patch_causal``). Layers run through
:class:`blt.generate.fast_layers.FastLayer`. One closing row uses Python ints for its row and
slots, so the cache is read as views, and its document's patches are a contiguous range of
slots, read without a mask; several rows gather their cache rows per layer. (Measured and
dropped: every row running the stack whenever any closes, its cache read as one view and the
other rows' outputs dropped, was 1.2x slower for a batch of 8 on the tiny config: 8-row matmuls
and attention cost more than gathering the ~2 closing rows.)
"""

from __future__ import annotations

import torch

from blt.generate.caches import KVStore
from blt.generate.fast_layers import FastLayer, FastLinear
from blt.model.blocks import rope_angles
from blt.model.global_transformer import GlobalTransformer


class GlobalStep:
    def __init__(self, model: GlobalTransformer, batch: int, max_patches: int, backend: object,
                 like: torch.Tensor) -> None:
        self.model = model
        attn = model.layers[0].self_attn
        self.store = KVStore(len(model.layers), batch, attn.kv_heads, attn.head_dim, max_patches, like.dtype, like.device,
                             documents=False)  # documents are slot ranges (doc_start), not per-slot ids
        self.fast = [FastLayer(layer, rotate_in_matmul=None) for layer in model.layers]
        self.project = FastLinear(model.token_embedding_projection)
        self.cos_PD, self.sin_PD = rope_angles(torch.arange(max_patches, device=like.device), attn.head_dim, model.rope_theta)
        self.slots_P = torch.arange(max_patches, device=like.device)
        self.count_B = torch.zeros(batch, dtype=torch.long, device=like.device)  # patches closed so far
        self.ones_B = torch.ones(batch, dtype=torch.long, device=like.device)
        self.counts = [0] * batch  # count_B as Python values: the step's shapes and fast paths need no sync
        # the first slot of each row's current document: with block_documents a row's patch attends
        # exactly slots [doc_start, n] (documents are contiguous runs of slots: no per-slot
        # document ids are kept), so one row reads that range with no mask; 0 without
        self.doc_start = [0] * batch
        self.batch = batch
        self.pending: tuple | None = None  # (row, first patch, its document start, EOS flags) of close_row

    def close(self, rows_C: torch.Tensor, patches_C1E: torch.Tensor, has_eos_C: torch.Tensor,
              rows: list[int] | None = None, any_eos: bool = True) -> torch.Tensor:
        """Run the closed patches' vectors ``[C, 1, E]`` through the global stack -> ``[C, 1, d_global]``.
        ``rows``: ``rows_C`` as a list (else read from the tensor); ``any_eos``: False when no
        closing patch holds an EOS (a hint that skips the document update)."""
        rows = rows_C.tolist() if rows is None else rows
        h_CD = self.project(patches_C1E[:, 0])
        if len(rows) == 1:
            h_CD = self._close_one(rows[0], h_CD)
        else:
            h_CD = self._close_gathered(rows, rows_C, h_CD)
        self._count(rows, rows_C, has_eos_C, any_eos)
        return h_CD[:, None]

    def _close_one(self, b: int, h_1D: torch.Tensor) -> torch.Tensor:
        """One row: its cache row and slot are Python ints, so every read is a view, and its
        patch reads slots ``doc_start .. n`` (its document) with no mask."""
        store, n = self.store, self.counts[b]
        start = self.doc_start[b]  # 0 without block_documents
        cos, sin = self.cos_PD[n], self.sin_PD[n]
        for i, fast in enumerate(self.fast):
            h_1D = fast(h_1D, cos, sin, *store.layers[i], n, n + 1, None, row=b, start=start)
        return h_1D

    def _close_gathered(self, rows: list[int], rows_C: torch.Tensor, h_CD: torch.Tensor) -> torch.Tensor:
        """Several rows: their cache slots are gathered per layer. Row b's patch reads slots
        ``doc_start .. n_b`` (patch_causal, or patch_block_causal's document), a mask per row; the
        slots, ranges and cache positions come from the Python counters as one tensor."""
        C, store = len(rows), self.store
        _, Hk, P, _ = store.layers[0][0].shape
        n, start = [self.counts[b] for b in rows], [self.doc_start[b] for b in rows]
        used = max(n) + 1
        write = [(b * Hk + h) * P + m for b, m in zip(rows, n) for h in range(Hk)]  # (b, h, n) in [B * Hk * P]
        packed = torch.tensor(n + start + write, dtype=torch.long, device=rows_C.device)
        n_C, write_CH = packed[:C], packed[2 * C :]
        slots_K = self.slots_P[:used]
        allowed_CK = slots_K <= n_C[:, None]  # this patch and earlier ones
        if any(start):  # and none before the row's document
            allowed_CK &= slots_K >= packed[C : 2 * C, None]
        mask = allowed_CK[:, None, None, :]
        cos, sin = self.cos_PD.index_select(0, n_C)[:, None], self.sin_PD.index_select(0, n_C)[:, None]  # (C, 1, hd)
        for i, fast in enumerate(self.fast):
            h_CD = fast.gathered(h_CD, cos, sin, *store.layers[i], rows_C, write_CH, used, mask)
        return h_CD

    def _count(self, rows: list[int], rows_C: torch.Tensor, has_eos_C: torch.Tensor, any_eos: bool) -> None:
        """Rows ``rows`` closed one patch each (``has_eos_C``: which of them held an EOS)."""
        for b in rows:
            self.counts[b] += 1
        self.count_B.index_add_(0, rows_C, self.ones_B[: len(rows)])
        if any_eos and self.model.block_documents:  # else every patch reads from slot 0
            for b, eos in zip(rows, has_eos_C.tolist()):
                if eos:  # the next patch starts a document
                    self.doc_start[b] = self.counts[b]

    def close_row(self, b: int, patches_M1E: torch.Tensor, has_eos: list[bool]) -> torch.Tensor:
        """Run ``M`` consecutive patches of row ``b`` ``[M, 1, E]`` through the global stack in one
        call (speculative decoding's verification) -> ``[M, 1, d_global]``. Patch i is the row's
        ``n_b + i``-th: it attends the row's earlier patches and patches ``0 .. i`` of this call
        (each query writes its key before any query reads, layer by layer), with the documents
        counted as ``close`` counts them. :meth:`keep` then keeps the first few of them."""
        M = patches_M1E.shape[0]
        n, store, device = self.counts[b], self.store, self.count_B.device
        used = n + M
        h_MD = self.project(patches_M1E[:, 0])
        slots_M = torch.arange(n, used, device=device)
        allowed_MK = self.slots_P[:used] <= slots_M[:, None]
        if self.model.block_documents:  # patch i's document starts after the last EOS-marked patch before it
            starts, first = [], self.doc_start[b]
            for i, eos in enumerate(has_eos):
                starts.append(first)
                if eos:
                    first = n + i + 1
            if any(starts):
                allowed_MK = allowed_MK & (self.slots_P[:used] >= torch.tensor(starts, dtype=torch.long, device=device)[:, None])
        mask = allowed_MK[None, None]
        cos, sin = self.cos_PD[n:used, None], self.sin_PD[n:used, None]
        for i, fast in enumerate(self.fast):
            h_MD = fast.queries(h_MD, cos, sin, *store.layers[i], b, slots_M, used, mask)
        self.pending = (b, n, self.doc_start[b], list(has_eos))
        return h_MD[:, None]

    def keep(self, accepted: int) -> None:
        """Of the patches of the last :meth:`close_row`, count the first ``accepted`` as closed (their
        keys stay in the cache; the others' slots are rewritten by later steps). May be called
        again with a larger count as verification moves on."""
        b, n, doc_start, has_eos = self.pending
        self.counts[b] = n + accepted
        self.count_B[b] = n + accepted
        ends = [i for i, eos in enumerate(has_eos[:accepted]) if eos]
        self.doc_start[b] = n + ends[-1] + 1 if ends and self.model.block_documents else doc_start
