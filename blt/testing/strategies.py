"""Hypothesis strategies for token rows and batches (public: plugin authors use the same ones).

Every strategy yields valid ids (``0..259``, see ``blt.tokens``). A row is a ``LongTensor[N]``;
a batch is a ``LongTensor[B, N]`` whose rows have the same N but, in general, different patch
counts (rows of different lengths padded with a pad, EOS or space id: a "ragged" batch).
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from blt.tokens import BOS_ID, BPE_ID, EOS_ID, OFFSET, PAD_ID, VOCAB_SIZE, encode

#: Words with one- to four-byte UTF-8 characters, mixed into generated text.
MULTIBYTE_WORDS = ("héllo", "wörld", "naïve", "日本語", "你好", "😀", "Ελλάδα", "ПРИВЕТ", "ğ", "€5")
#: Frequent English pieces: BPE merges them, so prefixes of them re-split (non-incrementality).
ENGLISH_WORDS = ("the", "and", "in", "ing", "is", "th", "he", "of", "tion", "a", "t", "s", "e", "re", "er", "on")


def byte_strings(*, min_size: int = 0, max_size: int = 48) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, invalid UTF-8 included (lone continuation bytes, truncated sequences)."""
    return st.binary(min_size=min_size, max_size=max_size)


def utf8_texts(*, max_size: int = 32) -> st.SearchStrategy[str]:
    """Text mixing ASCII, spaces, punctuation and multi-byte characters (no surrogates)."""
    chars = st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs", "Cc"))
    pieces = st.one_of(st.text(chars, min_size=1, max_size=6), st.sampled_from(MULTIBYTE_WORDS), st.just(" "))
    return st.lists(pieces, max_size=max_size // 3 + 1).map("".join)


def english_texts(*, max_words: int = 8) -> st.SearchStrategy[str]:
    """Short English-like text from frequent pieces joined by nothing or a space."""
    words = st.lists(st.sampled_from(ENGLISH_WORDS), min_size=1, max_size=max_words)
    seps = st.sampled_from(["", " ", ""])
    return st.tuples(words, st.lists(seps, min_size=max_words, max_size=max_words)).map(
        lambda ws: "".join(w + s for w, s in zip(ws[0], ws[1], strict=False))
    )


def raw_ids(*, min_size: int = 0, max_size: int = 24) -> st.SearchStrategy[list[int]]:
    """Any ids, specials (pad, BOS, EOS, BPE delimiter) anywhere in the row."""
    ids = st.one_of(st.integers(0, VOCAB_SIZE - 1), st.sampled_from([PAD_ID, BOS_ID, EOS_ID, BPE_ID]))
    return st.lists(ids, min_size=min_size, max_size=max_size)


@st.composite
def token_rows(draw: st.DrawFn, *, max_bytes: int = 32, text: st.SearchStrategy | None = None) -> torch.Tensor:
    """A ``LongTensor[N]``: encoded text or bytes with or without BOS/EOS, raw ids, an empty row,
    or a single token. ``text`` replaces the default mix of text sources."""
    source = text if text is not None else st.one_of(utf8_texts(max_size=max_bytes), byte_strings(max_size=max_bytes))
    kind = draw(st.sampled_from(["document", "document", "document", "raw", "empty", "single"]))
    if kind == "document" or text is not None:
        data = draw(source)
        return encode(data, bos=draw(st.booleans()), eos=draw(st.booleans()))
    if kind == "raw":
        return torch.tensor(draw(raw_ids(max_size=max_bytes)), dtype=torch.long)
    if kind == "empty":
        return torch.zeros(0, dtype=torch.long)
    return torch.tensor([draw(st.integers(0, VOCAB_SIZE - 1))], dtype=torch.long)


def pad_rows(rows: list[torch.Tensor], pad_id: int = PAD_ID, length: int | None = None) -> torch.Tensor:
    """Right-pad 1-D rows with ``pad_id`` into a ``LongTensor[B, N]`` (N = longest row or ``length``)."""
    n = max([len(r) for r in rows] + [length or 0])
    out = torch.full((len(rows), n), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


@st.composite
def token_batches(draw: st.DrawFn, *, max_rows: int = 4, max_bytes: int = 32,
                  text: st.SearchStrategy | None = None) -> torch.Tensor:
    """A ``LongTensor[B, N]`` (B >= 1) of rows of different lengths padded with a pad, EOS or
    space id (so patch counts differ between rows), possibly followed by extra padding."""
    rows = draw(st.lists(token_rows(max_bytes=max_bytes, text=text), min_size=1, max_size=max_rows))
    pad_id = draw(st.sampled_from([PAD_ID, EOS_ID, ord(" ") + OFFSET]))
    extra = draw(st.integers(0, 3))
    return pad_rows(rows, pad_id, max(len(r) for r in rows) + extra)


__all__ = [
    "ENGLISH_WORDS",
    "MULTIBYTE_WORDS",
    "byte_strings",
    "english_texts",
    "pad_rows",
    "raw_ids",
    "token_batches",
    "token_rows",
    "utf8_texts",
]
