"""``strided``: a patch every ``patch_size`` tokens from position 0 (the paper's static patching)."""

from __future__ import annotations

import torch

from blt.core.config import PatcherConfig, PositiveInt
from blt.core.hookspecs import hookimpl
from blt.core.patching import Patches, as_batch, finish
from blt.core.specs import PatcherSpec


class StridedConfig(PatcherConfig, tag="strided"):
    patch_size: PositiveInt = 4


class StridedPatcher:
    """Cuts every ``patch_size`` tokens from 0; with ``include_next_token`` the rows sum to N + 1."""

    incremental = True

    def __init__(self, config: StridedConfig) -> None:
        self.config = config

    def start_stepper(self, batch: int) -> StridedStarts:
        return StridedStarts(self.config.patch_size)

    def patch(self, tokens: torch.Tensor, *, include_next_token: bool = False, entropies: torch.Tensor | None = None) -> Patches:
        tokens_BN, squeeze = as_batch(tokens)
        B, N = tokens_BN.shape
        pos = torch.arange(N + int(include_next_token), device=tokens_BN.device)
        starts = (pos % self.config.patch_size == 0).expand(B, -1)
        return finish(starts, self.config.max_patch_length, squeeze)


class StridedStarts:
    """Generation: position t + 1 starts a patch iff ``(t + 1) % k == 0``."""

    def __init__(self, patch_size: int) -> None:
        self.patch_size = patch_size

    def step(self, tokens_B: torch.Tensor, t: int) -> torch.Tensor:
        return torch.full_like(tokens_B, (t + 1) % self.patch_size == 0, dtype=torch.bool)


@hookimpl
def blt_register_patchers():
    return [PatcherSpec(name="strided", config_type=StridedConfig, build=StridedPatcher, incremental=True,
                        summary="fixed-size patches of patch_size tokens")]
