"""The global transformer, one patch at a time, with a KV cache over the row's earlier patches.

Only the rows whose patch closes at this byte take part in a step. Row b's new patch is its
``n_b``-th (RoPE position ``n_b``, cache slot ``n_b``); with ``block_documents`` it belongs to the
document counted by the EOS-marked patches closed before it and attends only that document's
patches (``patch_block_causal``), else all earlier patches (``patch_causal``).
"""

from __future__ import annotations

import torch

from blt.generate.caches import KVStore, attend_for
from blt.attention.backend import AttentionBackend
from blt.model.blocks import rope_angles
from blt.model.global_transformer import GlobalTransformer
from blt.attention.masks import PATCH_BLOCK_CAUSAL, PATCH_CAUSAL


class GlobalStep:
    def __init__(self, model: GlobalTransformer, batch: int, max_patches: int, backend: AttentionBackend,
                 like: torch.Tensor) -> None:
        self.model, self.backend = model, backend
        attn = model.layers[0].self_attn
        self.head_dim = attn.head_dim
        self.store = KVStore(len(model.layers), batch, attn.kv_heads, attn.head_dim, max_patches, like.dtype, like.device)
        self.count_B = torch.zeros(batch, dtype=torch.long, device=like.device)  # patches closed so far
        self.doc_B = torch.zeros(batch, dtype=torch.long, device=like.device)    # EOS-marked patches closed so far

    def close(self, rows_C: torch.Tensor, patches_C1E: torch.Tensor, has_eos_C: torch.Tensor) -> torch.Tensor:
        """Run the closed patches' vectors ``[C, 1, E]`` through the global stack -> ``[C, 1, d_global]``."""
        n_C, doc_C = self.count_B[rows_C], self.doc_B[rows_C]
        self.store.begin(rows_C, n_C, n_C, doc_C, used=int(n_C.max()) + 1)
        kv_pos_CK, kv_doc_CK = self.store.key_positions()
        if self.model.block_documents:
            attend = attend_for(self.backend, PATCH_BLOCK_CAUSAL, n_C[:, None], kv_pos_CK, doc_C[:, None], kv_doc_CK)
        else:
            attend = attend_for(self.backend, PATCH_CAUSAL, n_C[:, None], kv_pos_CK)
        cos, sin = rope_angles(n_C[:, None], self.head_dim, self.model.rope_theta)  # (C, 1, hd)
        rope = (cos.unsqueeze(1), sin.unsqueeze(1))  # (C, 1, 1, hd): one position per row
        proj = self.model.token_embedding_projection
        h_C1D = proj(patches_C1E) if proj is not None else patches_C1E
        for i, layer in enumerate(self.model.layers):
            h_C1D = layer(h_C1D, rope, attend, self.store.layer(i))
        self.count_B[rows_C] += 1
        self.doc_B[rows_C] += has_eos_C.long()
        return h_C1D
