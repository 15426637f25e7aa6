"""The oracle: recompute everything for every new byte (the reference's ``generate_nocache``).

Each step re-patches the row's whole prefix with ``include_next_token=True``, each document (ended by
EOS) alone as the data pipeline patches it (entropy patchers re-run their model over it; a patcher
with ``patch_prepared`` applies its rule on the prepared stream, so ``bpe`` follows its
delimiters), gives BOS its own patch,
runs the full model and keeps the last position's logits. Rows run one at a time, so they are independent by construction. Cost per byte
grows with the prefix (O(T^2) overall); any patcher works, BPE included.
"""

from __future__ import annotations

from typing import Any

import torch

from blt.generate.documents import row_lengths
from blt.generate.outputs import RowOutputs
from blt.model.layout import split_first_patch


def next_logits_nocache(model: torch.nn.Module, patcher: Any, ids: list[int]) -> torch.Tensor:
    """Logits ``[260]`` for the token after ``ids`` (one row), recomputed from scratch."""
    device = next(model.parameters()).device
    tokens_1N = torch.tensor([ids], dtype=torch.long, device=device)
    lengths_1P = split_first_patch(row_lengths(patcher, tokens_1N[0])[None])
    return model(tokens_1N, lengths_1P)[0, -1]


def run_nocache(model: torch.nn.Module, patcher: Any, prompts: list[list[int]], rows: RowOutputs) -> None:
    seqs = [list(p) for p in prompts]
    while not rows.all_done:
        for b, ids in enumerate(seqs):
            if not rows.done[b]:
                ids.append(rows.add(b, next_logits_nocache(model, patcher, ids)))
