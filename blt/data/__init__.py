"""Data: document sources, tokenized/patched stores on disk, row packing and resumable batches."""

from blt.data.config import DataConfig
from blt.data.loader import Batch, TrainStream, eval_batches, open_store
from blt.data.sources import DataError, iter_documents

__all__ = ["Batch", "DataConfig", "DataError", "TrainStream", "eval_batches", "iter_documents", "open_store"]
