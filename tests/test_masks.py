"""Mask descriptions agree with the rules written out position by position."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from blt.core.errors import InputError
from blt.core.patching import lengths_from_starts
from blt.attention import masks
from blt.model.layout import PatchLayout
from blt.tokens import EOS_ID


def random_batch(seed: int, B: int, N: int, p_start: float = 0.3, p_eos: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Random tokens (with EOS sprinkled in) and valid lengths (Σ = N + 1, first patch 1, right-padded)."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(4, 260, (B, N), generator=g)
    tokens[torch.rand(B, N, generator=g) < p_eos] = EOS_ID
    starts = torch.rand(B, N + 1, generator=g) < p_start
    starts[:, :2] = True
    return tokens, lengths_from_starts(starts)


def _ids(lengths: list[int], total: int) -> list[int]:
    ids = [p for p, n in enumerate(lengths) for _ in range(n)]
    return ids[:total]


def test_layout_worked_example():
    tokens = torch.tensor([[1, 10, 11, 12, 13, 2]])
    layout = PatchLayout.from_lengths(tokens, torch.tensor([[1, 1, 3, 2]]))
    assert layout.patch_ids_BN.tolist() == [[0, 1, 2, 2, 2, 3]]
    assert layout.decoder_patch_ids_BN.tolist() == [[0, 1, 1, 1, 2, 2]]
    assert layout.byte_doc_BN.tolist() == [[0, 0, 0, 0, 0, 0]]  # the EOS closes its own document
    assert layout.patch_doc_BP.tolist() == [[0, 0, 0, 0]]


def test_documents_from_eos():
    tokens = torch.tensor([[1, 10, 2, 1, 11, 2, 1]])
    layout = PatchLayout.from_lengths(tokens, torch.tensor([[1, 2, 1, 2, 1, 1]]))
    assert layout.byte_doc_BN.tolist() == [[0, 0, 0, 1, 1, 1, 2]]
    # patches: [1] [10 2] [1] [11 2] [1] [next]; EOS-marked: 1 and 3
    assert layout.patch_doc_BP.tolist() == [[0, 0, 1, 1, 2, 2]]


def reference_dense(kind: str, tokens: torch.Tensor, lengths: torch.Tensor, window: int | None, k: int) -> torch.Tensor:
    """The masks as written in the reference notes, with Python loops over positions."""
    B, N = tokens.shape
    out = []
    for b in range(B):
        toks = tokens[b].tolist()
        lens = [n for n in lengths[b].tolist()]
        P = len(lens)
        pid = _ids(lens, N + 1)
        enc, dec = pid[:N], [pid[t + 1] - 1 for t in range(N)]
        marked = [any(toks[t] == EOS_ID for t in range(N) if enc[t] == p) for p in range(P)]
        if kind == masks.LOCAL_BLOCK_CAUSAL:
            m = [[s <= t and (window is None or t - s < window) and EOS_ID not in toks[s:t] for s in range(N)] for t in range(N)]
        elif kind in (masks.PATCH_CAUSAL, masks.PATCH_BLOCK_CAUSAL):
            block = kind == masks.PATCH_BLOCK_CAUSAL
            m = [[q <= p and not (block and any(marked[q:p])) for q in range(P)] for p in range(P)]
        elif kind == masks.BYTE_TO_PATCH:
            m = [[i // k - window < enc[t] <= i // k for t in range(N)] for i in range(P * k)]
        else:
            m = [[dec[t] - window < j // k <= dec[t] for j in range(P * k)] for t in range(N)]
        out.append(torch.tensor(m, dtype=torch.bool))
    return torch.stack(out)


def describe(kind: str, layout: PatchLayout, window: int | None, k: int) -> masks.MaskDescription:
    if kind == masks.LOCAL_BLOCK_CAUSAL:
        return masks.local_block_causal(layout, window)
    if kind in (masks.PATCH_CAUSAL, masks.PATCH_BLOCK_CAUSAL):
        return masks.patch_causal(layout, kind == masks.PATCH_BLOCK_CAUSAL)
    if kind == masks.BYTE_TO_PATCH:
        return masks.byte_to_patch(layout, k, window)
    return masks.patch_to_byte(layout, k, window)


@pytest.mark.parametrize("kind", sorted(masks.MASK_KINDS))
@given(seed=st.integers(0, 10**6), B=st.integers(1, 3), N=st.integers(1, 24), window=st.integers(1, 6), k=st.integers(1, 3))
def test_dense_matches_reference_rule(kind, seed, B, N, window, k):
    tokens, lengths = random_batch(seed, B, N)
    layout = PatchLayout.from_lengths(tokens, lengths)
    desc = describe(kind, layout, window, k)
    assert desc.kind == kind
    assert torch.equal(desc.dense(), reference_dense(kind, tokens, lengths, window, k))


def test_unlimited_window_local():
    tokens, lengths = random_batch(3, 2, 30, p_eos=0.0)
    layout = PatchLayout.from_lengths(tokens, lengths)
    dense = masks.local_block_causal(layout, None).dense()
    assert torch.equal(dense, torch.ones(30, 30, dtype=torch.bool).tril().expand(2, -1, -1))


def test_bad_window_and_kind_rejected():
    pos = torch.zeros(1, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="window"):
        masks.MaskDescription(masks.LOCAL_BLOCK_CAUSAL, pos, pos, window=0)
    with pytest.raises(ValueError):
        masks.MaskDescription("causal_everything", pos, pos)


def test_layout_rejects_bad_lengths():
    tokens = torch.tensor([[1, 10, 11]])
    with pytest.raises(InputError, match="sum to N \\+ 1 = 4"):
        PatchLayout.from_lengths(tokens, torch.tensor([[1, 2]]))
    with pytest.raises(InputError, match="first patch must hold BOS"):
        PatchLayout.from_lengths(tokens, torch.tensor([[0, 4]]))
    assert PatchLayout.from_lengths(tokens, torch.tensor([[2, 2]])).patch_lengths_BP.tolist() == [[1, 1, 2]]


def test_split_first_patch_for_static_patchers():
    from blt.model.layout import split_first_patch

    lengths = torch.tensor([[3, 3, 1], [1, 4, 2]])
    assert split_first_patch(lengths).tolist() == [[1, 2, 3, 1], [1, 4, 2, 0]]
    assert split_first_patch(lengths[1:]).tolist() == [[1, 4, 2]]
