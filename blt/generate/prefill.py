"""Prompt prefill: the prompts' global steps and decoder positions in one pass per block and row.

Stepping through a prompt costs what generating it costs, though no prompt position's logits are
used but the last. With a decoder step that offers ``reserve()``, ``verify()`` and ``settle()``
(both builtin decoders do), positions ``0 .. P - 1`` (``P``: the shortest prompt's length minus
one, so every row is still reading its prompt there) go in blocks of up to :data:`BLOCK`:

1. the encoder and the patcher consume the block's bytes position by position, every row at once
   (the encoder's byte states and patch vectors depend on bytes only, and the patcher's rule runs
   byte by byte anyway);
2. per row, one call of the global stack runs every patch the row closed in the block
   (:meth:`blt.generate.global_step.GlobalStep.close_row`), and one pass of the decoder computes
   the row's positions of the block with the global states stepping would give them (``verify``,
   the pass speculative decoding verifies drafts with); the closed patches are then pushed into
   the decoder's ring.

The decoder's ring grows by a block for the duration (``reserve``) and goes back to its window
afterwards (``settle``); position ``P`` onwards steps as usual, so its logits come from a plain
step. Plain cached generation and speculative decoding (before its drafting starts) prefill this
way; a decoder step without these methods steps through its prompts. A plugin decoder whose
``verify`` has no ``row`` parameter prefills one row only.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from blt.tokens import EOS_ID

BLOCK = 512  # prompt positions per block: bounds the block's masks ([BLOCK, window + BLOCK])


def can_prefill(gen: Any, batch: int) -> bool:
    decoder, glob = getattr(gen, "decoder", None), getattr(gen, "glob", None)
    if not (all(callable(getattr(decoder, n, None)) for n in ("reserve", "verify", "settle", "push"))
            and all(callable(getattr(glob, n, None)) for n in ("close_row", "keep"))
            and all(callable(getattr(gen, n, None)) for n in ("advance", "block_schedule", "decode_block", "push_row"))):
        return False
    return batch == 1 or "row" in inspect.signature(decoder.verify).parameters


def prefill(gen: Any, prompts: list[list[int]], device: torch.device) -> None:
    """Positions ``0 .. P - 1`` of every row (``prompts``: each row's first ``P`` tokens)."""
    P, B = len(prompts[0]), len(prompts)
    gen.decoder.reserve(min(BLOCK, P))
    same_doc_from = 0  # the first position from which every row's bytes are in its current document
    for start in range(0, P, BLOCK):
        stop = min(P, start + BLOCK)
        positions = [gen.advance(torch.tensor([p[t] for p in prompts], dtype=torch.long, device=device))
                     for t in range(start, stop)]
        for b, prompt in enumerate(prompts):
            decode_block(gen, positions, b, row=b if B > 1 else None)
            eos = [t for t in range(start, stop) if prompt[t] == EOS_ID]
            same_doc_from = max(same_doc_from, eos[-1] + 1 if eos else 0)
    gen.decoder.settle(gen.eos_before_B, same_doc_from)


def decode_block(gen: Any, positions: list, b: int, row: int | None) -> None:
    """Row ``b``'s global call and decoder pass over a block of ``positions``, then its pushes."""
    closing = [(p, p.closing.index(b)) for p in positions if b in p.closing]
    states_M1G = None
    if closing:
        states_M1G = gen.glob.close_row(b, torch.cat([p.vectors[c : c + 1] for p, c in closing]),
                                        [p.has_eos[c] for p, c in closing])
    gen.decode_block(positions, *gen.block_schedule(positions, states_M1G, b), row=row)
    if closing:
        gen.glob.keep(len(closing))
        for q, (p, _) in enumerate(closing):
            gen.push_row(p, b, states_M1G[q : q + 1])
