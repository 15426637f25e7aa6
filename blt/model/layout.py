"""Per-batch patch bookkeeping: which patch each byte belongs to, which patch it reads, documents.

Computed once at the top of the model's forward from ``tokens`` and ``patch_lengths`` (all
vectorised); every mask description and every gather/scatter is derived from it.
"""

from __future__ import annotations

import attrs
import torch

from blt.core.errors import InputError
from blt.core.patching import patch_ids_from_lengths
from blt.tokens import EOS_ID, VOCAB_SIZE


@attrs.frozen(eq=False)
class PatchLayout:
    """Shapes: B rows, N bytes, P patch columns (rows zero-padded on the right).

    ``patch_lengths_BP`` is the model's own view: a first patch longer than 1 has been split
    into ``[1, l0 - 1]`` (so P may be one more than the patcher returned).

    ``patch_ids_BN``: encoder patch of byte t. ``decoder_patch_ids_BN``: ``P(t+1) - 1``, the last
    patch that ends at or before t, whose global state byte t may read (as in Pagnoni et al., 2024).
    ``byte_doc_BN``: number of EOS strictly before t (an EOS closes its own document).
    ``patch_doc_BP``: number of EOS-marked patches strictly before p (a patch is EOS-marked iff
    one of its bytes is EOS).
    """

    patch_lengths_BP: torch.Tensor
    patch_ids_BN: torch.Tensor
    decoder_patch_ids_BN: torch.Tensor
    byte_doc_BN: torch.Tensor
    patch_doc_BP: torch.Tensor

    @property
    def batch(self) -> int:
        return self.patch_ids_BN.shape[0]

    @property
    def num_bytes(self) -> int:
        return self.patch_ids_BN.shape[1]

    @property
    def num_patches(self) -> int:
        return self.patch_lengths_BP.shape[1]

    @classmethod
    def from_lengths(cls, tokens_BN: torch.Tensor, patch_lengths_BP: torch.Tensor) -> PatchLayout:
        check_inputs(tokens_BN, patch_lengths_BP)
        B, N = tokens_BN.shape
        # BOS must be a patch of its own for the decoder shift to stay causal; static patchers
        # (strided) cut from 0, so their first patch is split into [1, l0 - 1] here, as the
        # reference's packing does. Dynamic patchers already start patch 1 at position 1.
        lengths = split_first_patch(patch_lengths_BP)
        ids_with_next_BN1 = patch_ids_from_lengths(lengths, N + 1)  # (B, N+1)
        patch_ids_BN = ids_with_next_BN1[:, :N]
        decoder_patch_ids_BN = ids_with_next_BN1[:, 1:] - 1
        is_eos_BN = (tokens_BN == EOS_ID).long()
        byte_doc_BN = torch.cumsum(is_eos_BN, 1) - is_eos_BN
        marked_BP = torch.zeros_like(lengths).scatter_reduce(1, patch_ids_BN, is_eos_BN, "amax", include_self=True)
        patch_doc_BP = torch.cumsum(marked_BP, 1) - marked_BP
        return cls(lengths, patch_ids_BN, decoder_patch_ids_BN, byte_doc_BN, patch_doc_BP)


def check_inputs(tokens_BN: torch.Tensor, patch_lengths_BP: torch.Tensor) -> None:
    """Raise InputError naming what is wrong with ``tokens`` / ``patch_lengths``."""
    for name, t in (("tokens", tokens_BN), ("patch_lengths", patch_lengths_BP)):
        if not isinstance(t, torch.Tensor):
            raise InputError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype.is_floating_point or t.dtype == torch.bool or t.is_complex():
            raise InputError(f"{name} must be an integer tensor, got dtype {t.dtype}")
        if t.dim() != 2:
            raise InputError(f"{name} must have shape [B, {'N' if name == 'tokens' else 'P'}], got {list(t.shape)}")
    B, N = tokens_BN.shape
    if patch_lengths_BP.shape[0] != B:
        raise InputError(f"patch_lengths has {patch_lengths_BP.shape[0]} rows but tokens has {B}")
    if N == 0 or patch_lengths_BP.shape[1] == 0:
        raise InputError(f"empty input: tokens {list(tokens_BN.shape)}, patch_lengths {list(patch_lengths_BP.shape)}")
    lo, hi = int(tokens_BN.min()), int(tokens_BN.max())
    if lo < 0 or hi >= VOCAB_SIZE:
        raise InputError(f"token ids must lie in 0..{VOCAB_SIZE - 1}, got min {lo}, max {hi}")
    if int(patch_lengths_BP.min()) < 0:
        raise InputError(f"patch_lengths must be >= 0, got min {int(patch_lengths_BP.min())}")
    sums = patch_lengths_BP.sum(1)
    bad = (sums != N + 1).nonzero().flatten()
    if bad.numel():
        row = int(bad[0])
        raise InputError(
            f"patch_lengths must sum to N + 1 = {N + 1} in every row (as returned by patch(..., include_next_token=True)); "
            f"row {row} sums to {int(sums[row])}"
        )
    first = (patch_lengths_BP[:, 0] < 1).nonzero().flatten()
    if first.numel():
        row = int(first[0])
        raise InputError(f"the first patch must hold BOS (length >= 1); row {row} starts with length {int(patch_lengths_BP[row, 0])}")


def split_first_patch(patch_lengths_BP: torch.Tensor) -> torch.Tensor:
    """Split a first patch longer than 1 into ``[1, l0 - 1]`` (the reference's packing rule, §15.5).

    Static patchers (``strided``) cut from position 0, so their first patch holds BOS and more;
    the model needs BOS alone. Rows whose first patch already has length 1 are unchanged; the
    result has one more column when any row is split. Prefix-stable, so incrementality is kept.
    """
    lengths = patch_lengths_BP.long()
    split_B = lengths[:, 0] > 1
    if not bool(split_B.any()):
        return lengths
    padded = torch.nn.functional.pad(lengths, (0, 1))
    shifted = torch.cat([torch.ones_like(lengths[:, :1]), lengths[:, :1] - 1, lengths[:, 1:]], dim=1)
    return torch.where(split_B[:, None], shifted, padded)
