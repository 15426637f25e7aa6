"""``[data]``: where documents come from, how they are packed into rows, and where patches are cached."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from blt.core.config import Config, PositiveInt


class DataConfig(Config):
    """The ``[data]`` table of an experiment.

    ``source``: ``"builtin"`` (the shipped corpus) or one or more paths, each a file or a directory
    (walked recursively in sorted order; names starting with ``.`` and Spark's ``_SUCCESS``/
    ``_metadata`` markers skipped). Formats, chosen by ``format`` (``"auto"``: by name):

    - text: any other file (``.gz``/``.zst`` decompressed), one document per file;
    - JSON Lines: ``.jsonl``/``.ndjson``, plain, ``.gz`` or ``.zst``, one document per line in the
      string field ``text_field``;
    - Parquet: ``.parquet``/``.parq`` files (a directory of them is a Parquet dataset), one
      document per row of the string column ``text_field``;
    - Hugging Face ``datasets`` ``save_to_disk`` directories (``"hf"``; detected by their
      ``state.json``/``dataset_dict.json``), read with pyarrow without importing ``datasets``,
      one document per row of ``text_field``. A ``DatasetDict``'s ``train`` split is trained on and
      its ``validation`` (else ``test``) split is the held-out split.

    Every reader streams (a small batch of records at a time), so memory does not grow with the
    corpus. A document's id is its file's path plus ``#piece``, ``:line`` or ``:row``.
    ``heldout``: held-out source for BPB; ``None`` means the built-in held-out split for
    ``"builtin"`` and, for paths, the dataset's own held-out split where it has one, else every
    document whose split key hashes to 0 mod 10 (the same rule), the key naming its file relative
    to the source entry (so the split survives moving the corpus).
    ``seq_len``: bytes per row (the model sees ``seq_len`` inputs and ``seq_len`` targets).
    ``batch_size``: rows per micro-batch, global over all ranks (must divide by the world size).
    ``patches``: ``"cached"`` computes each document's patch lengths once and stores them on
    disk keyed by the source and patcher-config fingerprints; ``"online"`` patches while reading.
    ``workers``: processes that tokenize and patch while a store is built (``None``: the CPU
    count, at most 4; ``1``: in this process). The store's bytes do not depend on it, so it is
    not part of any fingerprint.
    """

    source: str | list[str] = "builtin"
    format: Literal["auto", "text", "jsonl", "parquet", "hf"] = "auto"
    text_field: str = "text"
    builtin_sources: list[Literal["kjv", "python", "chinese", "fr", "de", "es", "ru", "el", "ar", "fa", "ja", "ko",
                                  "zh", "udhr"]] | None = None
    heldout: str | list[str] | None = None
    max_documents: PositiveInt | None = None   # cap per split (quick experiments, tests)
    seq_len: Annotated[int, Meta(ge=2)] = 256
    batch_size: PositiveInt = 8
    seed: int = 0
    patches: Literal["cached", "online"] = "cached"
    cache_dir: str | None = None               # None: $BLT_CACHE_DIR or ~/.cache/blt-lab
    workers: PositiveInt | None = None          # store-building processes; None: min(4, CPU count)


__all__ = ["DataConfig"]
