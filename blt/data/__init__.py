"""Data: document sources, tokenized/patched stores on disk, row packing and resumable batches.

Modules: :mod:`~blt.data.config` (``[data]``), :mod:`~blt.data.sources` (streaming documents),
:mod:`~blt.data.store` (memory-mapped token/patch cache), :mod:`~blt.data.packing` (the row
contract), :mod:`~blt.data.loader` (train stream, eval batches). Heavy imports are lazy so the
experiment config can name ``DataConfig`` without importing torch.
"""

from __future__ import annotations

from typing import Any

from blt.data.config import DataConfig

_LAZY = {
    "Batch": "blt.data.loader", "TrainStream": "blt.data.loader", "eval_batches": "blt.data.loader",
    "open_store": "blt.data.loader", "DataError": "blt.data.sources", "iter_documents": "blt.data.sources",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'blt.data' has no attribute {name!r}")


__all__ = ["Batch", "DataConfig", "DataError", "TrainStream", "eval_batches", "iter_documents", "open_store"]
