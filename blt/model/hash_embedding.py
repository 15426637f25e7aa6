"""Hash n-gram embeddings, exactly as the reference and the HF port compute them.

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

    def rows(self, tokens_BN: torch.Tensor) -> torch.Tensor:
        """Fused-table rows ``[B, N, T]`` of every (function, group size) pair, in table order.

        One pass for all tables: the windows of the longest group are multiplied by a
        ``[T, g_max]`` matrix holding each table's prime powers right-aligned (zeros elsewhere),
        so a group of size g sees exactly its last g ids. int64 sums wrap, order-independently.
        """
        B, N = tokens_BN.shape
        g_max = max(self.group_sizes)
        padded_BM = torch.cat([tokens_BN.new_zeros(B, g_max - 1), tokens_BN.long()], dim=1)
        windows_BNG = padded_BM.unfold(1, g_max, 1)  # (B, N, g_max), oldest first
        coefficients = [[0] * (g_max - g) + prime_powers(f, g) for f in range(self.functions) for g in self.group_sizes]
        coefficients_TG = torch.tensor(coefficients, dtype=torch.int64, device=tokens_BN.device)
        hashed_BNT = (windows_BNG[:, :, None, :] * coefficients_TG).sum(-1)
        offsets_T = torch.arange(self.num_tables, device=tokens_BN.device) * self.buckets
        return torch.remainder(hashed_BNT, self.buckets) + offsets_T

    def forward(self, tokens_BN: torch.Tensor) -> torch.Tensor:
        """``[B, N] -> [B, N, dim]``: one fused lookup-and-sum (``embedding_bag``) over all tables."""
        B, N = tokens_BN.shape
        if self.num_tables == 0:
            return self.weight.new_zeros(B, N, self.weight.shape[1])
        rows_BNT = self.rows(tokens_BN)
        summed = nn.functional.embedding_bag(rows_BNT.reshape(B * N, self.num_tables), self.weight, mode="sum")
        return summed.view(B, N, -1)
