"""The attention-backend interface the model is written against.

A backend turns a :class:`~blt.attention.masks.MaskDescription` into its own form once per batch
(``prepare``) and then computes attention with it (``attend``). :func:`bind` closes over the
prepared mask, giving the ``attend(q, k, v)`` callable that :mod:`blt.model.blocks` layers take.

Convention shared by every backend: a query row with no allowed key (e.g. the slots of a
zero-length padding patch) outputs **zeros**. Such rows never influence real outputs.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol, runtime_checkable

import torch

from blt.core.errors import UnavailableError
from blt.model.blocks import Attend
from blt.attention.masks import MaskDescription


@runtime_checkable
class AttentionBackend(Protocol):
    """``q_BHQD, k_BHKD, v_BHKD`` have equal head counts (layers expand GQA before calling)."""

    name: str
    mask_kinds: frozenset[str]

    def prepare(self, mask: MaskDescription) -> Any: ...

    def attend(self, q_BHQD: torch.Tensor, k_BHKD: torch.Tensor, v_BHKD: torch.Tensor, prepared: Any) -> torch.Tensor: ...

    def can_train(self, device: torch.device | str) -> str | None: ...


def bind(backend: AttentionBackend, mask: MaskDescription) -> Attend:
    """Prepare ``mask`` for ``backend`` and return ``attend(q, k, v) -> o``."""
    return functools.partial(backend.attend, prepared=backend.prepare(mask))


def check_kind(backend: AttentionBackend, mask: MaskDescription) -> None:
    """Refuse (never silently drop) a mask kind the backend does not implement."""
    if mask.kind not in backend.mask_kinds:
        raise UnavailableError(
            f"attention backend {backend.name!r} does not implement mask kind {mask.kind!r} "
            f"(it implements: {', '.join(sorted(backend.mask_kinds))})"
        )


def dense_mask(mask: MaskDescription) -> tuple[torch.Tensor, torch.Tensor]:
    """``(allowed_B1QK, has_key_B1Q1)``: the dense boolean mask (head dim broadcast) and which rows see any key."""
    allowed_B1QK = mask.dense().unsqueeze(1)
    return allowed_B1QK, allowed_B1QK.any(-1, keepdim=True)
