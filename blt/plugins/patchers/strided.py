"""``strided``: a patch every ``patch_size`` tokens from position 0 (the paper's static patching)."""

from __future__ import annotations

import torch

from blt.core.config import PatcherConfig, PositiveInt
from blt.core.hookspecs import hookimpl
from blt.core.patching import Patches, as_batch, finish
from blt.core.specs import PatcherSpec
from blt.tokens import EOS_ID


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
    """Generation: position t + 1 starts a patch iff it is a multiple of k counted from its
    document's first position (each document is patched alone, as in training: the position after
    an EOS counts from 0 again)."""

    def __init__(self, patch_size: int) -> None:
        from blt.generate.documents import DocumentClock

        self.patch_size = patch_size
        self.clock = DocumentClock()

    def snapshot(self) -> tuple:
        return self.clock.snapshot()

    def restore(self, mark: tuple) -> None:
        self.clock.restore(mark)

    def step(self, tokens_B: torch.Tensor, t: int) -> torch.Tensor:
        return torch.tensor(self.step_values(tokens_B.tolist(), t), dtype=torch.bool, device=tokens_B.device)

    def step_values(self, tokens: list[int], t: int) -> list[bool]:
        """:meth:`step` on Python values."""
        local = self.clock.local_values(tokens, t)  # position of t in its document
        return [(n + 1) % self.patch_size == 0 or token == EOS_ID for n, token in zip(local, tokens)]


@hookimpl
def blt_register_patchers():
    return [PatcherSpec(name="strided", config_type=StridedConfig, build=StridedPatcher, incremental=True,
                        summary="fixed-size patches of patch_size tokens")]
