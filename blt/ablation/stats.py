"""Statistics of an ablation: means with 95% Student-t intervals over seeds, paired differences
to a reference variant, and the compute-optimal frontier with its fitted log-log slope.

The t quantile is computed, not looked up: the Student-t density integrated with Simpson's rule
and inverted by bisection (no scipy). With ``n`` seeds the interval is
``mean +- t_{0.975, n-1} * s / sqrt(n)`` (``s`` the sample standard deviation); one seed gives
no interval (``None``).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any


def _t_density(x: float, df: int) -> float:
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))


def _t_cdf_above_half(x: float, df: int, intervals: int = 2000) -> float:
    """P(T <= x) - 1/2 for x >= 0 (Simpson's rule on [0, x])."""
    h = x / intervals
    total = _t_density(0.0, df) + _t_density(x, df)
    for i in range(1, intervals):
        total += (4 if i % 2 else 2) * _t_density(i * h, df)
    return total * h / 3


@lru_cache(maxsize=None)
def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile (``p`` in [0.5, 1)) of Student's t with ``df`` degrees of freedom."""
    if not 0.5 <= p < 1 or df < 1:
        raise ValueError(f"t_quantile needs 0.5 <= p < 1 and df >= 1, got p={p}, df={df}")
    target = p - 0.5
    lo, hi = 0.0, 1.0
    while _t_cdf_above_half(hi, df) < target:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_cdf_above_half(mid, df) < target else (lo, mid)
    return (lo + hi) / 2


def mean_ci(values: list[float], level: float = 0.95) -> dict[str, Any]:
    """``{"mean", "ci95": [low, high] or None, "half_width" or None, "n", "sd" or None}``."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_ci of no values")
    mean = sum(values) / n
    if n == 1:
        return {"mean": mean, "ci95": None, "half_width": None, "n": 1, "sd": None}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return {"mean": mean, "ci95": [mean - half, mean + half], "half_width": half, "n": n, "sd": sd}


def paired_difference(values: dict[Any, float], reference: dict[Any, float]) -> dict[str, Any] | None:
    """Variant minus reference on the seeds both have: ``mean_ci`` of the differences plus
    ``per_seed`` (``{seed: difference}``); ``None`` when they share no seed."""
    shared = [s for s in values if s in reference]
    if not shared:
        return None
    diffs = {s: values[s] - reference[s] for s in shared}
    return {**mean_ci(list(diffs.values())), "per_seed": diffs}


def frontier(points: list[tuple[float, float, float, Any]]) -> list[tuple[float, float, Any]]:
    """The compute-optimal frontier of ``(budget, train_flops, bpb, size)`` points: at each
    budget, the size with the lowest BPB. Returns ``[(train_flops, bpb, size)]`` by budget."""
    best: dict[float, tuple[float, float, Any]] = {}
    for budget, flops, bpb, size in points:
        if budget not in best or bpb < best[budget][1]:
            best[budget] = (flops, bpb, size)
    return [best[b] for b in sorted(best)]


def loglog_slope(points: list[tuple[float, float]]) -> dict[str, float] | None:
    """Least-squares fit ``log bpb = intercept + slope * log flops`` (natural logs) over
    ``[(flops, bpb)]``: ``{"slope", "intercept"}``, or ``None`` with fewer than two distinct FLOPs."""
    xs = [math.log(f) for f, _ in points]
    ys = [math.log(b) for _, b in points]
    if len(set(xs)) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return {"slope": slope, "intercept": my - slope * mx}


__all__ = ["frontier", "loglog_slope", "mean_ci", "paired_difference", "t_quantile"]
