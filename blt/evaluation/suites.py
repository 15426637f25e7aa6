"""``run_suite(name, scorer, documents)``: the ``blt eval --suite`` results.

- ``noise``: ``{"clean", "antspeak", "drop", "random_case", "repeat", "upper_case"}``, each a bits
  per byte: the summed nats of every (perturbed) document (:mod:`blt.evaluation.noise`, seeded per
  document) over ``ln 2`` and the bytes of the *original* documents, so every variant, whatever
  its patching or tokenisation, divides the same likelihood by the same count. Each document is
  scored alone with rolling windows (:meth:`~blt.evaluation.score.Scorer.document_nats`).
- ``chars``: ``{task: {"accuracy", "chance", "n"}}`` for the CUTE-style tasks of
  :mod:`blt.evaluation.chars`, built from the words of the documents.

``documents``: ``(doc_id, source, data)`` (:mod:`blt.evaluation.documents`); ``max_bytes`` keeps
the first documents up to that many bytes (the last one cut at a character boundary).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from blt.core.errors import InputError
from blt.evaluation.documents import Document, limit_bytes


def run_noise(scorer: Any, documents: Sequence[Document], *, seed: int = 0, max_bytes: int | None = None,
              batch_size: int = 8, progress: Any = None) -> dict[str, float]:
    from blt.evaluation.noise import NOISES, noised_bytes

    docs = limit_bytes(documents, max_bytes)
    if not docs:
        raise InputError("the noise suite needs at least one non-empty document")
    texts = [d for _, _, d in docs]
    for name in NOISES:
        texts += [noised_bytes(name, d, seed=seed, doc_id=doc_id) for doc_id, _, d in docs]
    nats = scorer.document_nats(texts, batch_size=batch_size, progress=progress)
    n_bytes = sum(len(d) for _, _, d in docs)
    out = {}
    for k, name in enumerate(("clean", *NOISES)):
        total = sum(float(x.sum()) for x in nats[k * len(docs) : (k + 1) * len(docs)])
        out[name] = total / math.log(2.0) / n_bytes
    return out


def noise_increase(result: dict[str, float]) -> dict[str, float]:
    """BPB increase of each perturbation over the clean text (from a ``noise`` result)."""
    return {name: bpb - result["clean"] for name, bpb in result.items() if name != "clean"}


def run_chars(scorer: Any, documents: Sequence[Document], *, seed: int = 0, max_bytes: int | None = None,
              batch_size: int = 8, progress: Any = None, n: int | None = None) -> dict[str, dict[str, Any]]:
    from blt.evaluation.chars import N_ITEMS, TASKS, Context, make_items, score_items

    docs = limit_bytes(documents, max_bytes)
    context = Context.from_text("\n".join(d.decode("utf-8", errors="replace") for _, _, d in docs))
    if not context.words:
        raise InputError("the chars suite found no words (runs of 3-12 lower-case letters) in the documents")
    items = {task: make_items(task, context, seed=seed, n=n or N_ITEMS) for task in TASKS}
    return score_items(items, lambda pairs: scorer.continuation_nats(pairs, batch_size=batch_size, progress=progress))


SUITES: dict[str, Callable[..., dict[str, Any]]] = {"noise": run_noise, "chars": run_chars}


def run_suite(name: str, scorer: Any, documents: Sequence[Document], *, seed: int = 0, max_bytes: int | None = None,
              **options: Any) -> dict[str, Any]:
    """The ``--json`` object of suite ``name`` (``options``: ``batch_size``, ``progress``)."""
    if name not in SUITES:
        raise InputError(f"unknown suite {name!r}; choose one of {', '.join(SUITES)}")
    return SUITES[name](scorer, documents, seed=seed, max_bytes=max_bytes, **options)


__all__ = ["SUITES", "noise_increase", "run_chars", "run_noise", "run_suite"]
