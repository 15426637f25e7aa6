"""``[data]``: where documents come from, how they are packed into rows, and where patches are cached."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from blt.core.config import Config, PositiveInt


class DataConfig(Config):
    """The ``[data]`` table of an experiment.

    ``source``: ``"builtin"`` (the shipped corpus) or one or more paths: text files, JSON Lines
    files (``.jsonl``/``.jsonl.gz``, one document per line in ``text_field``) or directories
    (walked recursively, sorted, hidden files skipped).
    ``heldout``: held-out source for BPB; ``None`` means the built-in held-out split for
    ``"builtin"`` and, for paths, every document whose id hashes to 0 mod 10 (the same rule), the id
    naming its file relative to the source entry (so the split survives moving the corpus).
    ``seq_len``: bytes per row (the model sees ``seq_len`` inputs and ``seq_len`` targets).
    ``batch_size``: rows per micro-batch, global over all ranks (must divide by the world size).
    ``patches``: ``"cached"`` computes each document's patch lengths once and stores them on
    disk keyed by the source and patcher-config fingerprints; ``"online"`` patches while reading.
    """

    source: str | list[str] = "builtin"
    format: Literal["auto", "text", "jsonl"] = "auto"
    text_field: str = "text"
    builtin_sources: list[Literal["kjv", "python", "chinese"]] | None = None
    heldout: str | list[str] | None = None
    max_documents: PositiveInt | None = None   # cap per split (quick experiments, tests)
    seq_len: Annotated[int, Meta(ge=2)] = 256
    batch_size: PositiveInt = 8
    seed: int = 0
    patches: Literal["cached", "online"] = "cached"
    cache_dir: str | None = None               # None: $BLT_CACHE_DIR or ~/.cache/blt-lab


__all__ = ["DataConfig"]
