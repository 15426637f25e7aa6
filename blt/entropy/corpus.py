"""Texts for training and calibrating entropy models: the built-in corpus or user files.

Files are read exactly as ``[data] source`` reads them (:mod:`blt.data.sources`: ``.jsonl``
gives one document per line, its ``"text"`` field; any other file is text; directories are
walked) and split by the same held-out rule, so an entropy model trained on a corpus never sees
the documents a BLT run on that corpus holds out.
"""

from __future__ import annotations

import pathlib

from blt.core.errors import InputError


def read_documents(files: list[str], split: str | None = None) -> list[str]:
    """Non-empty documents of text / JSONL files (or directories), in order; with ``split``
    (``"train"`` or ``"heldout"``) only that split. Errors name the file and line."""
    from blt.data.sources import iter_file_documents

    for name in files:
        if not pathlib.Path(name).expanduser().exists():
            raise InputError(f"corpus file not found: {name}")
    return [data.decode("utf-8", errors="surrogateescape") for _, data in iter_file_documents(files, split)
            if data.strip()]


def corpus_texts(files: list[str], sources: list[str] | None = None) -> tuple[list[str], list[str], str]:
    """``(train_texts, heldout_texts, description)`` from files, or the built-in corpus when ``files`` is empty."""
    if files:
        train, heldout = read_documents(files, "train"), read_documents(files, "heldout")
        if not train and not heldout:
            raise InputError(f"corpus is empty: no text in {', '.join(files)}")
        if not train:
            raise InputError(f"every document of {', '.join(files)} is held out (about 1 in 10 is, by a hash of its "
                             "name, as for [data] source); add files or split the text into more documents")
        return train, heldout, f"files: {', '.join(files)} (about 1 document in 10 held out, as for [data] source)"
    from blt.corpus import load_builtin_corpus

    train = [d.text for d in load_builtin_corpus("train", sources)]
    heldout = [d.text for d in load_builtin_corpus("heldout", sources)]
    if not train:
        raise InputError("built-in corpus selection is empty; check corpus.sources")
    return train, heldout, f"built-in corpus ({', '.join(sources) if sources else 'all sources'}), train/heldout splits"


def split_texts(files: list[str] | None, split: str = "train", sources: list[str] | None = None) -> list[str]:
    """One split of a corpus: ``split`` is ``train``, ``heldout`` or ``all``."""
    train, heldout, _ = corpus_texts(files or [], sources)
    return {"train": train, "heldout": heldout, "all": train + heldout}[split]
