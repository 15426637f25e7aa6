"""Prompts -> token id lists, with one clear error for each kind of bad prompt.

A prompt is text (``str``, UTF-8), raw ``bytes``, or token ids (a sequence of ints or a 1-D
LongTensor; a 2-D tensor is a batch of such rows). Text and bytes get BOS and no EOS. Token ids
must already start with BOS. A prompt must hold at least one byte after BOS: generation from BOS
alone is refused (BLT's first patch is BOS by itself; with nothing after it there is nothing to
condition on, and the reference never does it either).

A patcher whose model reads a prepared stream gives ``prepare_prompt(ids) -> ids`` (``bpe``
delimits the prompt's pieces as training does, leaving the last one open); generation applies it
to every prompt, before the context check.

The *context* of a model is the number of token positions (BOS included) it was trained on: the
experiment's ``data.seq_len`` for models trained here, ``max_position_embeddings`` for converted
Hugging Face models. A longer prompt is refused; generation may run past the context (the local
models are windowed; the global model then sees more patches than it was trained on).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from blt.core.errors import InputError
from blt.tokens import BOS_ID, VOCAB_SIZE, encode


def prompt_tokens(prompts: Any, context: int | None = None, patcher: Any = None) -> list[list[int]]:
    """Normalise and check prompts; returns one list of token ids per prompt (prepared by the
    patcher's ``prepare_prompt`` when it has one)."""
    if isinstance(prompts, torch.Tensor):
        if prompts.dim() not in (1, 2):
            raise InputError(f"token prompts must have shape [N] or [B, N], got {list(prompts.shape)}")
        rows: list[Any] = [prompts] if prompts.dim() == 1 else list(prompts)
    elif isinstance(prompts, (str, bytes, bytearray)):
        rows = [prompts]
    elif isinstance(prompts, Sequence):
        rows = list(prompts)
    else:
        raise InputError(f"prompts must be a list of str, bytes or token-id sequences, got {type(prompts).__name__}")
    if not rows:
        raise InputError("no prompts given: pass at least one prompt")
    out = [_one(i, p) for i, p in enumerate(rows)]
    prepare = getattr(patcher, "prepare_prompt", None)
    if prepare is not None:
        out = [list(prepare(ids)) for ids in out]
    if context is not None:
        for i, ids in enumerate(out):
            if len(ids) > context:
                raise InputError(f"prompt {i} is {len(ids)} tokens long (BOS included), longer than the model's context "
                                 f"of {context}; shorten it to at most {context - 1} bytes")
    return out


def _one(i: int, prompt: Any) -> list[int]:
    if isinstance(prompt, str):
        ids = encode(prompt, bos=True, eos=False).tolist()
    elif isinstance(prompt, (bytes, bytearray, memoryview)):
        ids = encode(bytes(prompt), bos=True, eos=False).tolist()
    elif isinstance(prompt, torch.Tensor) or (isinstance(prompt, Sequence) and all(isinstance(x, int) for x in prompt)):
        t = torch.as_tensor(prompt)
        if t.dim() != 1 or t.dtype.is_floating_point or t.dtype == torch.bool:
            raise InputError(f"prompt {i}: token ids must be a 1-D integer sequence, got {list(t.shape)} of {t.dtype}")
        ids = t.tolist()
        if ids and not all(0 <= x < VOCAB_SIZE for x in ids):
            raise InputError(f"prompt {i}: token ids must lie in 0..{VOCAB_SIZE - 1}, got min {min(ids)}, max {max(ids)}")
        if not ids or ids[0] != BOS_ID:
            raise InputError(f"prompt {i}: token ids must start with BOS ({BOS_ID}); blt.tokens.encode(text, eos=False) adds it")
    else:
        raise InputError(f"prompt {i} must be str, bytes or a sequence of token ids, got {type(prompt).__name__}")
    if len(ids) < 2:
        raise InputError(f"prompt {i} is empty (BOS only): give at least one byte to continue from")
    return ids
