"""The five character-level perturbations of the BLT paper's noised benchmarks (Pagnoni et al. 2024,
arXiv:2412.09871, §6.1: "AntSpeak", "Drop", "RandomCase", "Repeat", "UpperCase").

As the paper describes them:

- ``antspeak``: the whole text upper-cased, its characters separated by spaces (``"Hi you"`` ->
  ``"H I   Y O U"``: the original space is a character too, so it sits between two spaces);
- ``drop``: 10% of the characters removed (``round(0.1 * n)`` positions chosen without replacement);
- ``random_case``: each character's case set at random (upper or lower, probability 1/2 each);
- ``repeat``: 20% of the characters repeated (``round(0.2 * n)`` positions chosen without
  replacement), each appearing 2, 3 or 4 times in all ("up to a maximum of four times"; the
  count uniform over those three);
- ``upper_case``: the whole text upper-cased.

Perturbations act on Unicode characters, never on bytes, so a multi-byte character is dropped,
repeated or re-cased whole. Bytes that are not valid UTF-8 survive as themselves (decoded with
``surrogateescape``; each counts as one character and has no case). Randomness comes from a
generator derived from ``(seed, perturbation, document id)`` (:func:`noise_rng`), never from a
global state, so the noised text of a document does not depend on which other documents are
evaluated or in what order.

Scored as bits per *original* byte: the nats of the whole noised text divided by ``ln 2`` and by
the bytes of the clean text (:mod:`blt.evaluation.suites`), so variants with different patchers
or tokenisers divide the same likelihood by the same count.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

DROP_RATE = 0.1
REPEAT_RATE = 0.2
REPEAT_MAX = 4


def noise_rng(seed: int, noise: str, doc_id: str) -> np.random.Generator:
    """A generator for one (seed, perturbation, document): PCG64 seeded from a SHA-256 digest."""
    digest = hashlib.sha256(f"{noise}\0{doc_id}".encode("utf-8", errors="surrogateescape")).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *words]))


def antspeak(text: str, rng: np.random.Generator | None = None) -> str:
    return " ".join(text.upper())


def upper_case(text: str, rng: np.random.Generator | None = None) -> str:
    return text.upper()


def _chosen(n: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    k = int(round(rate * n))
    if k:
        mask[rng.choice(n, size=k, replace=False)] = True
    return mask


def drop(text: str, rng: np.random.Generator) -> str:
    gone = _chosen(len(text), DROP_RATE, rng)
    return "".join(c for c, g in zip(text, gone) if not g)


def random_case(text: str, rng: np.random.Generator) -> str:
    upper = rng.random(len(text)) < 0.5
    return "".join(c.upper() if u else c.lower() for c, u in zip(text, upper))


def repeat(text: str, rng: np.random.Generator) -> str:
    chosen = _chosen(len(text), REPEAT_RATE, rng)
    times = rng.integers(2, REPEAT_MAX + 1, size=len(text))
    return "".join(c * int(t) if ch else c for c, ch, t in zip(text, chosen, times))


NOISES: dict[str, Callable[[str, np.random.Generator], str]] = {
    "antspeak": antspeak, "drop": drop, "random_case": random_case, "repeat": repeat, "upper_case": upper_case,
}


def apply_noise(name: str, text: str, *, seed: int, doc_id: str) -> str:
    """``text`` perturbed by ``name`` (one of :data:`NOISES`) with the document's own generator."""
    from blt.core.errors import InputError

    if name not in NOISES:
        raise InputError(f"unknown noise {name!r}; choose one of {', '.join(NOISES)}")
    return NOISES[name](text, noise_rng(seed, name, doc_id))


def noised_bytes(name: str, data: bytes, *, seed: int, doc_id: str) -> bytes:
    """:func:`apply_noise` on the characters of ``data`` (UTF-8; invalid bytes kept as themselves)."""
    text = bytes(data).decode("utf-8", errors="surrogateescape")
    return apply_noise(name, text, seed=seed, doc_id=doc_id).encode("utf-8", errors="surrogateescape")


__all__ = ["DROP_RATE", "NOISES", "REPEAT_MAX", "REPEAT_RATE", "antspeak", "apply_noise", "drop", "noise_rng",
           "noised_bytes", "random_case", "repeat", "upper_case"]
