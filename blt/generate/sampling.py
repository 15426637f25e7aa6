"""Choosing the next byte: greedy (temperature 0) or sampling with temperature, top-k and top-p.

Row b of a batch draws from its own random stream, seeded from ``(seed, b)``
(:func:`row_seed`), which advances only when that row samples: copies of one prompt in a batch give
different samples, a row's output is a function of its prompt, its index and the seed (never of
its batch-mates' prompts), and cached and no-cache generation draw the same numbers.
"""

from __future__ import annotations

import hashlib

import attrs
import torch

from blt.core.errors import InputError


@attrs.frozen
class SamplingParams:
    """``temperature`` 0 is greedy (top-k/top-p then have no effect); ``top_k >= 1``; ``0 < top_p <= 1``."""

    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None

    def __attrs_post_init__(self) -> None:
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not t >= 0 or t == float("inf"):
            raise InputError(f"temperature must be a finite number >= 0 (0 is greedy), got {t!r}")
        if self.top_k is not None and (isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1):
            raise InputError(f"top_k must be an integer >= 1 (or None for no limit), got {self.top_k!r}")
        p = self.top_p
        if p is not None and (isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1):
            raise InputError(f"top_p must lie in (0, 1] (or None for no limit), got {p!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise InputError(f"seed must be an integer, got {self.seed!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def filter_logits(logits_V: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Temperature-scaled logits with entries outside top-k / the top-p nucleus set to -inf."""
    scaled = logits_V.float() / params.temperature
    if params.top_k is not None and params.top_k < scaled.numel():
        # Exactly k candidates: a stable descending sort breaks ties at the k-th logit by the lowest id.
        order_V = torch.sort(scaled, descending=True, stable=True).indices
        drop_V = torch.ones_like(scaled, dtype=torch.bool)
        drop_V[order_V[: params.top_k]] = False
        scaled = scaled.masked_fill(drop_V, float("-inf"))
    if params.top_p is not None and params.top_p < 1:
        sorted_V, order_V = torch.sort(scaled, descending=True)
        probs_V = torch.softmax(sorted_V, dim=-1)
        before_V = torch.cumsum(probs_V, dim=-1) - probs_V  # mass strictly before each entry
        drop_sorted = before_V >= params.top_p  # keep the smallest prefix whose mass reaches top_p
        drop_V = torch.zeros_like(drop_sorted).scatter(0, order_V, drop_sorted)
        scaled = scaled.masked_fill(drop_V, float("-inf"))
    return scaled


def sampling_probs(logits_V: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """The distribution a sampled byte is drawn from: softmax of :func:`filter_logits` (on the CPU)."""
    return torch.softmax(filter_logits(logits_V.cpu(), params), dim=-1)


def row_seed(seed: int, row: int) -> int:
    """The seed of row ``row``'s stream: a 63-bit hash of ``(seed, row)`` (distinct streams per row,
    the same for a given pair in any batch)."""
    digest = hashlib.blake2b(f"{seed}:{row}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class Sampler:
    """``choose(row, logits_V) -> token id``, one generator per row."""

    def __init__(self, params: SamplingParams, batch: int, first_row: int = 0) -> None:
        self.params = params
        self.generators: list[torch.Generator] = []
        for row in range(first_row, first_row + batch):
            g = torch.Generator()
            if params.seed is None:
                g.seed()
            else:
                g.manual_seed(row_seed(params.seed, row))
            self.generators.append(g)

    def choose(self, row: int, logits_V: torch.Tensor) -> int:
        if self.params.greedy:
            return int(torch.argmax(logits_V))
        return int(torch.multinomial(sampling_probs(logits_V, self.params), 1, generator=self.generators[row]))
