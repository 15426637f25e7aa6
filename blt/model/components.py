"""What the model expects from encoder and decoder plugins (structural protocols).

A component declares the mask kinds it asks for, describes its masks once per batch from the
:class:`~blt.model.layout.PatchLayout`, and receives one ``attend(q, k, v)`` callable per mask
(already bound to the backend's prepared form) in ``forward``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from blt.model.blocks import Attend
from blt.model.layout import PatchLayout
from blt.model.masks import MaskDescription


@runtime_checkable
class LocalEncoder(Protocol):
    out_dim: int                 # width of each patch vector handed to the global transformer
    mask_kinds: frozenset[str]

    def describe_masks(self, layout: PatchLayout) -> dict[str, MaskDescription]: ...

    def __call__(self, tokens_BN: torch.Tensor, layout: PatchLayout, attends: dict[str, Attend]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ``(byte states [B, N, d_local], patch vectors [B, P, out_dim])``."""
        ...


@runtime_checkable
class LocalDecoder(Protocol):
    mask_kinds: frozenset[str]

    def describe_masks(self, layout: PatchLayout) -> dict[str, MaskDescription]: ...

    def __call__(self, bytes_BND: torch.Tensor, patches_BPG: torch.Tensor, layout: PatchLayout,
                 attends: dict[str, Attend]) -> torch.Tensor:
        """-> final (normed) byte states ``[B, N, d_local]``; the model applies ``lm_head``."""
        ...
