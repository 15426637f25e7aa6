"""The oracle: recompute everything for every new byte (the reference's ``generate_nocache``).

Each step re-patches the row's whole prefix with ``include_next_token=True`` (entropy patchers
re-run their model over it; a patcher with ``patch_prepared`` applies its rule on the prepared
stream, as the data pipeline does, so ``bpe`` follows its delimiters), gives BOS its own patch,
runs the full model and keeps the last position's logits. Rows run one at a time, so they are independent by construction. Cost per byte
grows with the prefix (O(T^2) overall); any patcher works, BPE included.
"""

from __future__ import annotations

from typing import Any

import torch

from blt.generate.outputs import RowOutputs
from blt.model.layout import split_first_patch


def next_logits_nocache(model: torch.nn.Module, patcher: Any, ids: list[int]) -> torch.Tensor:
    """Logits ``[260]`` for the token after ``ids`` (one row), recomputed from scratch."""
    device = next(model.parameters()).device
    tokens_1N = torch.tensor([ids], dtype=torch.long, device=device)
    patch = getattr(patcher, "patch_prepared", None) or patcher.patch  # the rule on the stream the model reads
    lengths_1P = split_first_patch(patch(tokens_1N, include_next_token=True).lengths.to(device))
    return model(tokens_1N, lengths_1P)[0, -1]


def run_nocache(model: torch.nn.Module, patcher: Any, prompts: list[list[int]], rows: RowOutputs) -> None:
    seqs = [list(p) for p in prompts]
    while not rows.all_done:
        for b, ids in enumerate(seqs):
            if not rows.done[b]:
                ids.append(rows.add(b, next_logits_nocache(model, patcher, ids)))
