"""Find the entropy threshold that gives a target average patch size on a corpus, as Pagnoni et
al. (2024) choose theirs: search θ on representative data until the average matches.

Entropies are computed once per document (each document patched alone, BOS/EOS included, as in
training); the threshold is then found by bisection, each probe a vectorised count of patch starts
over the padded ``[D, L]`` batch. Patch size = tokens / patches (a document's patches cover all of
its tokens). Both rules are monotone: a higher threshold never adds a start.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import torch

from blt.core.errors import InputError
from blt.core.patching import split_long_patches
from blt.entropy.compute import entropies as model_entropies
from blt.entropy.rules import entropy_starts, rule_scores
from blt.tokens import encode

RULES = ("global", "relative")


@attrs.frozen(eq=False)
class Calibration:
    """Result of :func:`calibrate_threshold`. ``per_doc``: ``FloatTensor[D]`` average patch size per document."""

    rule: str
    threshold: float
    target: float
    achieved: float
    per_doc: torch.Tensor
    tokens: int
    patches: int
    achievable: tuple[float, float]

    def spread(self) -> dict[str, float]:
        q = self.per_doc.float()
        return {"min": float(q.min()), "median": float(q.median()), "max": float(q.max()), "std": float(q.std()) if q.numel() > 1 else 0.0}


def document_entropies(model: torch.nn.Module, texts: Sequence[str], *, batch_size: int = 16, chunk: int = 512) -> list[torch.Tensor]:
    """Entropies ``[N_d]`` of each document encoded with BOS/EOS. Documents are batched by length
    (right padding never changes earlier positions' entropies: the models are causal)."""
    docs = [encode(t) for t in texts]
    order = sorted(range(len(docs)), key=lambda i: docs[i].numel())
    out: list[torch.Tensor | None] = [None] * len(docs)
    for lo in range(0, len(order), batch_size):
        idx = order[lo : lo + batch_size]
        batch = torch.nn.utils.rnn.pad_sequence([docs[i] for i in idx], batch_first=True, padding_value=0)
        e_BN = model_entropies(model, batch, chunk=chunk)
        for row, i in enumerate(idx):
            out[i] = e_BN[row, : docs[i].numel()].clone()
    return out  # type: ignore[return-value]


def _padded(doc_entropies: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([e.numel() for e in doc_entropies], dtype=torch.long)
    return torch.nn.utils.rnn.pad_sequence(list(doc_entropies), batch_first=True), lengths


def patch_counts(
    entropies_DL: torch.Tensor, lengths_D: torch.Tensor, threshold: float, rule: str, max_patch_length: int | None = None
) -> torch.Tensor:
    """``LongTensor[D]``: patches per document at ``threshold`` (exactly what the patcher would produce)."""
    D, L = entropies_DL.shape
    kw = {"threshold": threshold} if rule == "global" else {"relative_threshold": threshold}
    starts = split_long_patches(entropy_starts(entropies_DL, L, **kw), max_patch_length)
    valid = torch.arange(L)[None, :] < lengths_D[:, None]
    return (starts & valid).sum(1)


def decisive_scores(entropies_DL: torch.Tensor, lengths_D: torch.Tensor, rule: str) -> torch.Tensor:
    """The values the rule compares with θ, real positions only: ``e[p-1]`` (global) or
    ``e[p-1] - e[p-2]`` (relative) for the positions p >= 2 (>= 3) of each document."""
    scores_DS = rule_scores(entropies_DL, relative=rule != "global")  # index p - 2
    first = 0 if rule == "global" else 1
    s = torch.arange(scores_DS.shape[1])
    valid_DS = (s[None, :] >= first) & (s[None, :] + 2 < lengths_D[:, None])
    return scores_DS[valid_DS]


def _mid_gap(values: torch.Tensor, theta: float) -> float:
    """Move ``theta`` to the middle of the gap between the observed values around it.

    Bisection ends on an observed score, so the threshold would sit exactly on a value the model
    produces (often: the CNN sees only 2 bytes, so its entropies repeat). A last-ulp difference in
    a recomputed entropy would then flip that boundary. Every observed value keeps its side, so
    the patches on this corpus do not change.
    """
    v = values.double().flatten()
    v = v[torch.isfinite(v)]
    below, above = v[v <= theta], v[v > theta]
    if not below.numel() or not above.numel():
        return theta
    return (float(below.max()) + float(above.min())) / 2


def calibrate_threshold(
    doc_entropies: Sequence[torch.Tensor],
    target: float,
    *,
    rule: str = "global",
    max_patch_length: int | None = None,
    iterations: int = 64,
) -> Calibration:
    """The threshold whose average patch size (tokens / patches over the corpus) is closest to ``target``."""
    if rule not in RULES:
        raise InputError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
    if not math.isfinite(target) or target < 1:
        raise InputError(f"target patch size must be >= 1 byte (a patch holds at least one byte), got {target}")
    docs = [e for e in doc_entropies if e.numel()]
    if not docs:
        raise InputError("corpus is empty: no documents to calibrate on")
    e_DL, len_D = _padded(docs)
    total = int(len_D.sum())

    def size(theta: float) -> float:
        return total / int(patch_counts(e_DL, len_D, theta, rule, max_patch_length).sum())

    values = e_DL if rule == "global" else (e_DL[:, 1:] - e_DL[:, :-1])
    lo, hi = float(values.min()) - 1.0, float(values.max()) + 1.0
    smallest, largest = size(lo), size(hi)
    if not smallest <= target <= largest:
        raise InputError(
            f"target patch size {target} is unreachable on this corpus with the {rule} rule; achievable: {smallest:.3f} to {largest:.3f} bytes per patch"
        )
    for _ in range(iterations):  # size() is non-decreasing in theta
        mid = (lo + hi) / 2
        if size(mid) < target:
            lo = mid
        else:
            hi = mid
    theta = _mid_gap(decisive_scores(e_DL, len_D, rule), min((lo, hi), key=lambda t: abs(size(t) - target)))
    counts = patch_counts(e_DL, len_D, theta, rule, max_patch_length)
    return Calibration(
        rule=rule, threshold=theta, target=target, achieved=total / int(counts.sum()),
        per_doc=len_D.float() / counts.float(), tokens=total, patches=int(counts.sum()), achievable=(smallest, largest),
    )
