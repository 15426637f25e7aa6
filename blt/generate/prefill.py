"""Prompt prefill for one row: the prompt's global steps and decoder positions in one pass each.

Stepping through a prompt costs what generating it costs, though only the last prompt position's
logits are used. With one row (batch 1) and a decoder step that offers ``reserve()``, ``verify()``
and ``settle()`` (both builtin decoders do), the prompt goes in blocks of up to
:data:`BLOCK` positions:

1. the encoder and the patcher consume the block's bytes one by one (the encoder's byte states and
   patch vectors depend on bytes only, and the patcher's rule runs byte by byte anyway);
2. one call of the global stack runs every patch closed in the block
   (:meth:`blt.generate.global_step.GlobalStep.close_row`);
3. one pass of the decoder computes every position of the block with the global states stepping
   would give it (``verify``, the pass speculative decoding verifies drafts with), and the closed
   patches are pushed into its ring.

The decoder's ring grows by a block for the duration (``reserve``) and goes back to its window
afterwards (``settle``). The logits at the last prompt position are those stepping computes, up to
rounding (several positions per call). Other decoders, and batches, step through their prompts.
Plain cached generation (:func:`blt.generate.cached.run_cached`) prefills a single row's prompt
this way, and speculative decoding all of it but the last position (which steps, so that a patch
closing there starts a draft).
"""

from __future__ import annotations

from typing import Any

import torch

from blt.tokens import EOS_ID

BLOCK = 512  # prompt positions per block: bounds the block's masks ([BLOCK, window + BLOCK])


def can_prefill(gen: Any, batch: int) -> bool:
    decoder, glob = getattr(gen, "decoder", None), getattr(gen, "glob", None)
    return (batch == 1 and all(callable(getattr(decoder, n, None)) for n in ("reserve", "verify", "settle"))
            and all(callable(getattr(glob, n, None)) for n in ("close_row", "keep"))
            and all(callable(getattr(gen, n, None)) for n in ("advance", "block_schedule", "verify", "push")))


def prefill(gen: Any, prompt: list[int], device: torch.device) -> tuple[torch.Tensor, int]:
    """Positions ``0 .. len(prompt) - 1`` of one row -> (the logits at the last one ``[260]``, the
    global-stack calls made)."""
    gen.decoder.reserve(min(BLOCK, len(prompt)))
    last_eos, calls = -1, 0
    for start in range(0, len(prompt), BLOCK):
        block = prompt[start : start + BLOCK]
        positions = [gen.advance(torch.tensor([token], dtype=torch.long, device=device)) for token in block]
        last_eos = max([start + i for i, token in enumerate(block) if token == EOS_ID], default=last_eos)
        closing = [p for p in positions if p.closing]
        states_M1G = None
        if closing:
            states_M1G = gen.glob.close_row(0, torch.cat([p.vectors for p in closing]), [p.has_eos[0] for p in closing])
            calls += 1
        pushes, reads = gen.block_schedule(positions, states_M1G)
        logits_MV = gen.verify(positions, pushes, reads)
        if closing:
            gen.glob.keep(len(closing))
            for q, position in enumerate(closing):
                gen.push(position, states_M1G[q : q + 1])
    gen.decoder.settle(gen.eos_before_B, last_eos + 1)
    return logits_MV[-1], calls
