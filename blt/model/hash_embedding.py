"""Hash n-gram embeddings, exactly as the reference and the HF port compute them (BLT_NOTES §7).

For group size g and hash function f, position j hashes the window of the last g token ids
(left-padded with zeros), oldest first: ``h = sum_i w[i] * p_f^i`` in signed int64 with
two's-complement wraparound; the bucket is ``h mod V`` with a non-negative result. Tables are
ordered function-outer, group-size-inner and stored fused: table n occupies rows ``[n V, (n+1) V)``.
"""

from __future__ import annotations

import torch
from torch import nn

PRIMES = (1000000007, 5915587277, 1500450271, 3267000013, 5754853343, 4093082899,
          9576890767, 3628273133, 2860486313, 5463458053, 3367900313)


def wrap_int64(value: int) -> int:
    """Python int -> the signed int64 with the same low 64 bits."""
    return (value + 2**63) % 2**64 - 2**63


def prime_powers(function: int, group_size: int) -> list[int]:
    """``[p^0, ..., p^(g-1)]`` in wrapped int64, ``p = PRIMES[function % 11]``."""
    prime = PRIMES[function % len(PRIMES)]
    return [wrap_int64(prime**i) for i in range(group_size)]


def ngram_hash(tokens_BN: torch.Tensor, group_size: int, function: int, buckets: int) -> torch.Tensor:
    """Bucket ``[B, N]`` of the n-gram ending at each position (int64 wraparound, floor modulo)."""
    B, N = tokens_BN.shape
    padded_BM = torch.cat([tokens_BN.new_zeros(B, group_size - 1), tokens_BN.long()], dim=1)
    windows_BNG = padded_BM.unfold(1, group_size, 1)  # (B, N, g), oldest first
    powers_G = torch.tensor(prime_powers(function, group_size), dtype=torch.int64, device=tokens_BN.device)
    hashed_BN = (windows_BNG * powers_G).sum(-1)  # int64 arithmetic wraps
    return torch.remainder(hashed_BN, buckets)  # sign of the divisor: never negative


class HashNgramEmbedding(nn.Module):
    """Sum of ``functions x len(group_sizes)`` hashed lookups, one fused ``[T*V, dim]`` table."""

    def __init__(self, dim: int, group_sizes: tuple[int, ...] | list[int], functions: int, buckets: int) -> None:
        super().__init__()
        self.group_sizes, self.functions, self.buckets = tuple(group_sizes), functions, buckets
        self.num_tables = functions * len(self.group_sizes)
        self.weight = nn.Parameter(torch.empty(self.num_tables * buckets, dim))
        nn.init.normal_(self.weight)

    def forward(self, tokens_BN: torch.Tensor) -> torch.Tensor:
        """``[B, N] -> [B, N, dim]``."""
        out_BND = None
        table = 0
        for f in range(self.functions):  # loop over tables (a handful), not over positions
            for g in self.group_sizes:
                rows_BN = ngram_hash(tokens_BN, g, f, self.buckets) + table * self.buckets
                emb_BND = nn.functional.embedding(rows_BN, self.weight)
                out_BND = emb_BND if out_BND is None else out_BND + emb_BND
                table += 1
        if out_BND is None:
            return self.weight.new_zeros(*tokens_BN.shape, self.weight.shape[1])
        return out_BND
