"""The global transformer, one patch at a time, with a KV cache over the row's earlier patches.

Only the rows whose patch closes at this byte take part in a step. Row b's new patch is its
``n_b``-th (RoPE position ``n_b``, cache slot ``n_b``); with ``block_documents`` it belongs to the
document counted by the EOS-marked patches closed before it and attends only that document's
patches (``patch_block_causal``), else all earlier patches (``patch_causal``). Layers run through
:class:`blt.generate.fast_layers.FastLayer`.
"""

from __future__ import annotations

import torch

from blt.generate.caches import KVStore
from blt.generate.fast_layers import FastLayer
from blt.model.blocks import rope_angles
from blt.model.global_transformer import GlobalTransformer


class GlobalStep:
    def __init__(self, model: GlobalTransformer, batch: int, max_patches: int, backend: object,
                 like: torch.Tensor) -> None:
        self.model = model
        attn = model.layers[0].self_attn
        self.store = KVStore(len(model.layers), batch, attn.kv_heads, attn.head_dim, max_patches, like.dtype, like.device)
        self.fast = [FastLayer(layer) for layer in model.layers]
        self.cos_PD, self.sin_PD = rope_angles(torch.arange(max_patches, device=like.device), attn.head_dim, model.rope_theta)
        self.slots_P = torch.arange(max_patches, device=like.device)
        self.count_B = torch.zeros(batch, dtype=torch.long, device=like.device)  # patches closed so far
        self.doc_B = torch.zeros(batch, dtype=torch.long, device=like.device)    # EOS-marked patches closed so far
        self.batch = batch

    def close(self, rows_C: torch.Tensor, patches_C1E: torch.Tensor, has_eos_C: torch.Tensor) -> torch.Tensor:
        """Run the closed patches' vectors ``[C, 1, E]`` through the global stack -> ``[C, 1, d_global]``."""
        n_C, doc_C = self.count_B[rows_C], self.doc_B[rows_C]
        used = int(n_C.max()) + 1
        store = self.store
        store.doc_BC[rows_C, n_C] = doc_C
        allowed_CK = self.slots_P[:used] <= n_C[:, None]  # patch_causal: this patch and earlier ones
        if self.model.block_documents:  # patch_block_causal: and only the same document's patches
            allowed_CK = allowed_CK & (store.doc_BC[rows_C, :used] == doc_C[:, None])
        mask = allowed_CK[:, None, None, :]
        rows, slot = rows_C, n_C
        if self.batch == 1:  # one row: its slot is the last one read, and the cache needs no gather
            rows, slot = None, used - 1
            if not self.model.block_documents:
                mask = None  # every slot read is this patch or an earlier one
        cos, sin = self.cos_PD[n_C][:, None], self.sin_PD[n_C][:, None]  # (C, 1, hd): one position per row
        proj = self.model.token_embedding_projection
        h_CD = (proj(patches_C1E) if proj is not None else patches_C1E)[:, 0]
        for i, fast in enumerate(self.fast):
            h_CD = fast(h_CD, cos, sin, store.k[i], store.v[i], slot, used, mask, rows=rows)
        self.count_B[rows_C] += 1
        self.doc_B[rows_C] += has_eos_C.long()
        return h_CD[:, None]
