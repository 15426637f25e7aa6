"""Byte tokens, compatible with the released BLT checkpoints.

Vocabulary of 260: ``0`` pad / begin-of-example, ``1`` BOS, ``2`` EOS, ``3`` BPE delimiter, byte ``b`` -> ``b + 4``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

BOE_ID = 0
PAD_ID = 0
BOS_ID = 1
EOS_ID = 2
BPE_ID = 3
OFFSET = 4
VOCAB_SIZE = 260


def encode(data: str | bytes, *, bos: bool = True, eos: bool = True) -> torch.Tensor:
    """Encode text (UTF-8) or raw bytes into a ``LongTensor[N]`` of token ids."""
    if isinstance(data, str):
        raw = data.encode("utf-8", errors="surrogateescape")
    elif isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
    else:
        raise TypeError(f"encode() takes str or bytes, not {type(data).__name__}")
    body = torch.frombuffer(bytearray(raw), dtype=torch.uint8).to(torch.long) + OFFSET if raw else torch.empty(0, dtype=torch.long)
    parts = []
    if bos:
        parts.append(torch.tensor([BOS_ID], dtype=torch.long))
    parts.append(body)
    if eos:
        parts.append(torch.tensor([EOS_ID], dtype=torch.long))
    return torch.cat(parts)


def decode(ids: torch.Tensor | Iterable[int]) -> bytes:
    """Decode token ids to bytes: special ids (< 4) are dropped, bytes are bytes (no UTF-8 check)."""
    if isinstance(ids, torch.Tensor):
        flat = ids.reshape(-1)
        flat = flat[flat >= OFFSET] - OFFSET
        return bytes(flat.to(torch.uint8).tolist())
    return bytes(i - OFFSET for i in ids if i >= OFFSET)
