"""``space``: a patch ends with the first space-like byte of a run (SpaceByte-style, as in BLT)."""

from __future__ import annotations

import torch

from blt.core.config import PatcherConfig
from blt.core.hookspecs import hookimpl
from blt.core.patching import Patches, as_batch, dynamic_prefix, finish
from blt.core.specs import PatcherSpec
from blt.tokens import OFFSET


class SpaceConfig(PatcherConfig, tag="space"):
    pass


def _word_byte_table() -> torch.Tensor:
    """``table[id]`` is True for ids of ASCII letters, digits and UTF-8 continuation bytes."""
    table = torch.zeros(256 + OFFSET, dtype=torch.bool)
    for lo, hi in ((ord("0"), ord("9")), (ord("A"), ord("Z")), (ord("a"), ord("z")), (0x80, 0xBF)):
        table[lo + OFFSET : hi + OFFSET + 1] = True
    return table


_WORD_BYTE = _word_byte_table()
_WORD_BYTE_LIST = _WORD_BYTE.tolist()


def marked_positions(tokens_BN: torch.Tensor) -> torch.Tensor:
    """``[B, N]`` bool: space-like and the previous position is not, or a special token (id < 4)."""
    space_like = ~_WORD_BYTE.to(tokens_BN.device)[tokens_BN]
    prev = torch.nn.functional.pad(space_like, (1, 0), value=False)[:, :-1]
    return (space_like & ~prev) | (tokens_BN < OFFSET)


class SpacePatcher:
    incremental = True

    def __init__(self, config: SpaceConfig) -> None:
        self.config = config

    def start_stepper(self, batch: int) -> SpaceStarts:
        return SpaceStarts()

    def patch(self, tokens: torch.Tensor, *, include_next_token: bool = False, entropies: torch.Tensor | None = None) -> Patches:
        tokens_BN, squeeze = as_batch(tokens)
        B, N = tokens_BN.shape
        n_out = N + int(include_next_token)
        starts = dynamic_prefix(B, n_out, tokens_BN.device)
        if n_out > 2:
            # Start(p) for p >= 2 iff token p - 1 is marked.
            starts[:, 2:] = marked_positions(tokens_BN)[:, 1 : n_out - 1]
        return finish(starts, self.config.max_patch_length, squeeze)


class SpaceStarts:
    """Generation: Start(t + 1) iff token t is marked (from tokens t - 1 and t only), and always
    when t is the first token of its document (the dynamic prefix of a document patched alone; an
    EOS is marked, so the position after it starts too)."""

    def __init__(self) -> None:
        from blt.generate.documents import DocumentClock

        self.prev_space: list[bool] | None = None  # token t - 1 is space-like (False before the row)
        self.clock = DocumentClock()

    def snapshot(self) -> tuple:
        return self.prev_space, self.clock.snapshot()

    def restore(self, mark: tuple) -> None:
        self.prev_space, clock = mark
        self.clock.restore(clock)

    def step(self, tokens_B: torch.Tensor, t: int) -> torch.Tensor:
        return torch.tensor(self.step_values(tokens_B.tolist(), t), dtype=torch.bool, device=tokens_B.device)

    def step_values(self, tokens: list[int], t: int) -> list[bool]:
        """:meth:`step` on Python values: ``marked_positions`` at t from tokens t - 1 and t."""
        if self.prev_space is None:
            self.prev_space = [False] * len(tokens)
        local = self.clock.local_values(tokens, t)
        space = [not _WORD_BYTE_LIST[token] for token in tokens]
        starts = [(s and not p) or token < OFFSET or n == 0 for s, p, token, n in zip(space, self.prev_space, tokens, local)]
        self.prev_space = space
        return starts


@hookimpl
def blt_register_patchers():
    return [PatcherSpec(name="space", config_type=SpaceConfig, build=SpacePatcher, incremental=True,
                        summary="a patch ends with the first space-like byte of a run")]
