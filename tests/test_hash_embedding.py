"""Hash n-gram embeddings reproduce the reference exactly (its test vectors)."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from blt.model.hash_embedding import PRIMES, HashNgramEmbedding, ngram_hash, prime_powers, wrap_int64

HELLO = torch.tensor([[1, 76, 105, 112, 112, 115, 48, 36, 123, 115, 118, 112, 104]])


def test_reference_vectors():
    assert ngram_hash(HELLO, 3, 0, 500002).tolist()[0] == [
        443987, 124875, 393970, 386145, 358223, 190185, 141703, 484917, 141967, 146186, 10172, 334275, 306354]
    assert ngram_hash(HELLO, 8, 0, 500002).tolist()[0] == [
        172383, 205585, 456240, 129346, 299568, 322649, 430431, 246559, 94549, 155186, 258407, 498251, 491201]
    assert ngram_hash(HELLO, 3, 1, 30000).tolist()[0] == [
        21497, 13977, 18014, 11217, 2185, 6683, 26903, 9767, 7159, 26654, 3016, 15857, 18606]


def test_int64_powers_wrap():
    powers = prime_powers(0, 5)
    assert powers[:3] == [1, 1000000007, 1000000007**2]
    assert powers[3:] == [-4377642754154037417, 2173964608407773537]


def _python_hash(ids: list[int], g: int, f: int, V: int) -> list[int]:
    """Straight transcription of the rule with Python ints, wrapping to int64 after every step."""
    p = PRIMES[f % len(PRIMES)]
    padded = [0] * (g - 1) + ids
    out = []
    for j in range(len(ids)):
        h = 0
        for i, w in enumerate(padded[j : j + g]):
            h = wrap_int64(h + wrap_int64(w * wrap_int64(p**i)))
        out.append(h % V)  # Python modulo: sign of the divisor
    return out


@given(st.lists(st.integers(0, 259), min_size=1, max_size=20), st.integers(1, 8), st.integers(0, 10),
       st.integers(2, 600000))
def test_matches_python_int64_rule(ids, g, f, V):
    got = ngram_hash(torch.tensor([ids]), g, f, V).tolist()[0]
    assert got == _python_hash(ids, g, f, V)
    assert all(0 <= b < V for b in got)


def test_fused_table_order_function_outer_size_inner():
    emb = HashNgramEmbedding(dim=4, group_sizes=(3, 5), functions=2, buckets=97)
    with torch.no_grad():
        emb.weight.copy_(torch.randn_like(emb.weight))
    expected = torch.zeros(1, HELLO.shape[1], 4)
    table = 0
    for f in range(2):
        for g in (3, 5):
            expected += emb.weight[torch.tensor(_python_hash(HELLO[0].tolist(), g, f, 97)) + table * 97]
            table += 1
    torch.testing.assert_close(emb(HELLO), expected)
    assert emb.weight.shape == (4 * 97, 4)
