"""A capped evaluation samples the whole held-out split: every source, not the first documents."""

from __future__ import annotations

from hypothesis import given, strategies as st

from blt.data.loader import spread_order
from blt.evaluation.documents import limit_per_source


@given(st.integers(0, 500))
def test_spread_order_is_a_permutation(n):
    assert sorted(spread_order(n)) == list(range(n))


def test_spread_order_prefixes_leave_no_large_gap():
    for n in range(20, 700):  # exhaustive: the order is deterministic
        order = spread_order(n)
        for k in range(4, 21):
            picks = sorted(order[:k])
            gaps = [b - a for a, b in zip(picks, picks[1:])] + [n - picks[-1] + picks[0]]
            assert max(gaps) <= 5 * n / k, (n, k, gaps)  # store order would leave one gap of n - k


def test_limit_per_source_gives_each_source_its_share():
    docs = [(f"{s}/{i}", s, ("é" * 30).encode()) for s in ("a", "b", "c") for i in range(3)]
    out = limit_per_source(docs, 90)
    per = {}
    for _, source, data in out:
        per[source] = per.get(source, 0) + len(data)
        data.decode("utf-8")  # never cut inside a character
    assert set(per) == {"a", "b", "c"} and all(29 <= v <= 30 for v in per.values()), per
    assert limit_per_source(docs, None) == docs
