"""``byte``: every token is a patch (the byte-level baseline)."""

from __future__ import annotations

import torch

from blt.core.config import PatcherConfig
from blt.core.hookspecs import hookimpl
from blt.core.patching import Patches, as_batch, finish
from blt.core.specs import PatcherSpec


class ByteConfig(PatcherConfig, tag="byte"):
    pass


class BytePatcher:
    incremental = True

    def __init__(self, config: ByteConfig) -> None:
        self.config = config

    def start_stepper(self, batch: int) -> ByteStarts:
        return ByteStarts()

    def patch(self, tokens: torch.Tensor, *, include_next_token: bool = False, entropies: torch.Tensor | None = None) -> Patches:
        tokens_BN, squeeze = as_batch(tokens)
        B, N = tokens_BN.shape
        starts = torch.ones(B, N + int(include_next_token), dtype=torch.bool, device=tokens_BN.device)
        return finish(starts, self.config.max_patch_length, squeeze)


class ByteStarts:
    """Generation: every position starts a patch."""

    def snapshot(self) -> None:
        return None

    def restore(self, mark: None) -> None:
        pass

    def step(self, tokens_B: torch.Tensor, t: int) -> torch.Tensor:
        return torch.ones_like(tokens_B, dtype=torch.bool)

    def step_values(self, tokens: list[int], t: int) -> list[bool]:
        return [True] * len(tokens)


@hookimpl
def blt_register_patchers():
    return [PatcherSpec(name="byte", config_type=ByteConfig, build=BytePatcher, incremental=True,
                        summary="one patch per token")]
