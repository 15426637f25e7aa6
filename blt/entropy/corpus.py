"""Texts for training and calibrating entropy models: the built-in corpus or user files.

Files: ``.jsonl`` gives one document per line (its ``"text"`` field); any other file is one
document. For files, every 10th document (index 9, 19, ...) is held out.
"""

from __future__ import annotations

import json
import pathlib

from blt.core.errors import InputError


def read_documents(files: list[str]) -> list[str]:
    """Documents of text / JSONL files, in order; errors name the file and line."""
    docs: list[str] = []
    for name in files:
        path = pathlib.Path(name)
        if not path.is_file():
            raise InputError(f"corpus file not found: {path}")
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        if path.suffix == ".jsonl":
            for line_no, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    docs.append(record["text"] if isinstance(record, dict) else str(record))
                except (json.JSONDecodeError, KeyError) as exc:
                    raise InputError(f"{path}:{line_no}: expected a JSON object with a \"text\" field ({exc})") from None
        else:
            docs.append(text)
    return [d for d in docs if d]


def corpus_texts(files: list[str], sources: list[str] | None = None) -> tuple[list[str], list[str], str]:
    """``(train_texts, heldout_texts, description)`` from files, or the built-in corpus when ``files`` is empty."""
    if files:
        docs = read_documents(files)
        if not docs:
            raise InputError(f"corpus is empty: no text in {', '.join(files)}")
        train = [d for i, d in enumerate(docs) if i % 10 != 9]
        heldout = [d for i, d in enumerate(docs) if i % 10 == 9]
        return train, heldout, f"files: {', '.join(files)} (every 10th document held out)"
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
