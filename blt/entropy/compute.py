"""Entropies from either entropy model: per position, in nats, over all 260 logits, in float32.

``entropies(model, tokens)[b, i]`` is the entropy of the prediction of token ``i + 1`` given tokens
``0..i`` of row ``b``. Rows are independent, and long rows are processed in chunks that
carry a stream state (the transformer's KV cache within its window), so the result does not depend
on batch-mates, on padding to the right, or on how a stream is chunked.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import torch

DEFAULT_CHUNK = 512


class EntropyModel(Protocol):
    """What :mod:`blt.entropy` models provide."""

    kind: str
    context: int

    def new_state(self, batch: int) -> Any: ...

    def __call__(self, tokens_BT: torch.Tensor, state: Any = None) -> torch.Tensor: ...


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """``-sum softmax * log_softmax`` over the last dim, computed in float32 (nats)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def stream_logits(model: EntropyModel, tokens_BN: torch.Tensor, chunk: int = DEFAULT_CHUNK, state: Any = None) -> Iterator[torch.Tensor]:
    """Yield logits ``[B, C, 260]`` chunk by chunk (C <= chunk), continuing ``state`` (a new one if None)."""
    state = model.new_state(tokens_BN.shape[0]) if state is None else state
    for lo in range(0, tokens_BN.shape[1], chunk):
        yield model(tokens_BN[:, lo : lo + chunk], state)


def entropies(model: EntropyModel, tokens: torch.Tensor, *, chunk: int = DEFAULT_CHUNK, state: Any = None) -> torch.Tensor:
    """``FloatTensor[B, N]`` (or ``[N]`` for a 1-D input) of next-token entropies in nats.

    ``state``: continue a stream (see ``model.new_state``); it is updated, so a later call with the
    next tokens gives the same values as one call over the concatenation (incremental generation).
    """
    squeeze = tokens.dim() == 1
    tokens_BN = tokens.unsqueeze(0) if squeeze else tokens
    tokens_BN = tokens_BN.to(model.embed_tokens.weight.device).long()  # type: ignore[attr-defined]
    with torch.inference_mode():
        parts = [entropy_from_logits(logits) for logits in stream_logits(model, tokens_BN, chunk, state)]
    out = torch.cat(parts, dim=1) if parts else torch.zeros(tokens_BN.shape[0], 0)
    return out[0] if squeeze else out


def next_token_nll(model: EntropyModel, tokens_BN: torch.Tensor, chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
    """``[B, N - 1]`` negative log-likelihood (nats) of token ``t + 1`` given ``0..t``, with full streamed context."""
    with torch.inference_mode():
        logits = torch.cat(list(stream_logits(model, tokens_BN[:, :-1], chunk)), dim=1)
        return torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), tokens_BN[:, 1:], reduction="none")
