"""Bits per byte by the Unicode script of each target character and by corpus source.

Each document is scored alone with rolling windows (:meth:`blt.evaluation.score.Scorer.document_nats`:
every byte once, EOS not scored, a BPE delimiter's loss credited to the byte before it). A byte's
nats count for the script of the character it belongs to (:mod:`blt.evaluation.scripts`) and for
its document's source. ``bpb = nats / ln 2 / bytes`` of each group; groups without bytes are left out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from blt.evaluation.documents import Document, limit_bytes
from blt.evaluation.scripts import SCRIPTS, byte_scripts


def breakdown_from_nats(documents: Sequence[Document], nats: Sequence[np.ndarray]) -> dict[str, dict[str, dict[str, Any]]]:
    """The breakdown of documents whose per-byte nats are already known."""
    script_nats = np.zeros(len(SCRIPTS))
    script_bytes = np.zeros(len(SCRIPTS), dtype=np.int64)
    source_nats: dict[str, float] = {}
    source_bytes: dict[str, int] = {}
    for (_doc_id, source, data), per_byte in zip(documents, nats):
        if len(per_byte) != len(data):
            raise ValueError(f"{len(per_byte)} byte scores for a document of {len(data)} bytes")
        scripts = byte_scripts(data)
        script_nats += np.bincount(scripts, weights=per_byte, minlength=len(SCRIPTS))
        script_bytes += np.bincount(scripts, minlength=len(SCRIPTS))
        source_nats[source] = source_nats.get(source, 0.0) + float(per_byte.sum())
        source_bytes[source] = source_bytes.get(source, 0) + len(data)

    def group(total: float, count: int) -> dict[str, Any]:
        return {"bpb": total / math.log(2.0) / count, "bytes": int(count)}

    return {"by_script": {s: group(float(script_nats[i]), int(script_bytes[i])) for i, s in enumerate(SCRIPTS) if script_bytes[i]},
            "by_source": {s: group(source_nats[s], source_bytes[s]) for s in sorted(source_nats) if source_bytes[s]}}


def breakdown(scorer: Any, documents: Sequence[Document], *, max_bytes: int | None = None, batch_size: int = 8,
              progress: Any = None) -> dict[str, dict[str, dict[str, Any]]]:
    """``{"by_script": {script: {"bpb", "bytes"}}, "by_source": {source: {"bpb", "bytes"}}}``."""
    docs = limit_bytes(documents, max_bytes)
    nats = scorer.document_nats([d for _, _, d in docs], batch_size=batch_size, progress=progress)
    return breakdown_from_nats(docs, nats)


__all__ = ["breakdown", "breakdown_from_nats"]
