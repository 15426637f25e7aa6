"""``after_vowel``: a patch ends with each ASCII vowel (a rule-based, incremental patcher).

Rule: positions 0 and 1 always start a patch (BOS is a patch of its own, as in every dynamic
kind). For p >= 2, position p starts a patch iff token p - 1 is a vowel byte (``aeiouAEIOU``) or a
special token (id < 4). Whether p starts depends only on token p - 1, so the rule is incremental.
"""

from __future__ import annotations

from typing import Annotated

import torch
from msgspec import Meta

import blt
from blt.core.config import PatcherConfig
from blt.core.patching import Patches, as_batch, dynamic_prefix, finish
from blt.core.specs import PatcherSpec
from blt.tokens import OFFSET, VOCAB_SIZE


class AfterVowelConfig(PatcherConfig, tag="after_vowel"):
    """``vowels``: the ASCII characters that end a patch."""

    vowels: Annotated[str, Meta(min_length=1, pattern="^[\\x21-\\x7e]+$")] = "aeiouAEIOU"


class AfterVowelPatcher:
    """``patch(tokens [B, N] or [N])`` -> lengths ``[B, P]`` summing to N (N + 1 with include_next_token)."""

    incremental = True

    def __init__(self, config: AfterVowelConfig) -> None:
        self.config = config
        table = torch.zeros(VOCAB_SIZE, dtype=torch.bool)
        table[:OFFSET] = True  # specials end a patch
        table[torch.tensor([ord(c) + OFFSET for c in config.vowels])] = True
        self.ends_patch = table

    def patch(self, tokens: torch.Tensor, *, include_next_token: bool = False, entropies: torch.Tensor | None = None) -> Patches:
        tokens_BN, squeeze = as_batch(tokens)
        B, N = tokens_BN.shape
        n_out = N + int(include_next_token)
        starts = dynamic_prefix(B, n_out, tokens_BN.device)
        if n_out > 2:
            starts[:, 2:] = self.ends_patch.to(tokens_BN.device)[tokens_BN[:, 1 : n_out - 1]]
        return finish(starts, self.config.max_patch_length, squeeze)


@blt.hookimpl
def blt_register_patchers():
    return [PatcherSpec(name="after_vowel", config_type=AfterVowelConfig, build=AfterVowelPatcher,
                        incremental=True, summary="a patch ends with each vowel")]
