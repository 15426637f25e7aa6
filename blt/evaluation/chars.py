"""Character-level tasks in the style of CUTE (Edman et al. 2024, "CUTE: Measuring LLMs'
Understanding of Their Tokens"), as the BLT paper reports them (arXiv:2412.09871, Table 3).

Each task is multiple choice, built deterministically from the words of the evaluation text and
scored by log-likelihood: the prediction is the choice whose continuation (``" " + choice`` after
the prompt) has the largest summed log-probability (lm-eval's ``acc``, no length normalisation;
the first choice wins a tie). Prompts follow CUTE's wording (``Question: Swap "h" and "a" in
"that". Answer:``), zero-shot.

Words: maximal runs of Unicode letters, lower-case, 3 to 12 characters, distinct, in order of
first occurrence. Sentences (word-level tasks): windows of :data:`SENTENCE_WORDS` consecutive
words of the text (any case) joined by single spaces. Each task draws its items with its own
generator, ``random.Random(f"{seed}:{task}")``, over the shuffled words or sentences, keeping those
for which the task has enough distinct choices.

Tasks (answer -> distractors):

- ``spell``: the word spelled with spaces -> spellings of three misspellings of the same length
  (two adjacent letters swapped, a letter replaced by another of the word's letters, two letters
  two apart swapped) (4 choices); ``spell_inverse``: the spelling -> the word among those three
  misspellings (4);
- ``contains_char`` / ``contains_word``: is a letter in a word / a word in a sentence: Yes/No,
  half the items each way (2);
- ``orth``: of two words, the one closer in Levenshtein distance to a target: the unique closest
  of 12 other words drawn, and the farthest of those within one letter of its length and at least
  2 edits farther (2);
- ``ins_char`` / ``ins_word``: a new letter (word) after every occurrence of an anchor -> before
  every occurrence, at the start / end, nothing inserted (4);
- ``del_char`` / ``del_word``: every occurrence of an item removed -> nothing removed, only the
  first occurrence removed or another item removed, the item doubled (4);
- ``swap_char`` / ``swap_word``: two items occurring once each swapped -> nothing swapped, another
  pair swapped, the whole sequence reversed (4);
- ``sub_char`` / ``sub_word``: every occurrence of an item replaced by a new one -> nothing
  replaced, another item replaced, the new one inserted after the item (4).

Accuracy per task with its chance level (the mean of ``1 / number of choices``) and ``n`` items.
Choices of the spelling and orthography tasks have equal (or near-equal) lengths; in the editing
tasks the answer's length differs from some distractors' (an insertion is longer, a deletion
shorter), and an unnormalised log-likelihood favours shorter continuations, so an untrained
model can sit above or below chance there: compare variants on the same items (same text, seed).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from typing import Any

import attrs

TASKS = ("spell", "spell_inverse", "contains_char", "contains_word", "orth", "ins_char", "ins_word", "del_char",
         "del_word", "swap_char", "swap_word", "sub_char", "sub_word")
N_ITEMS = 32
SENTENCE_WORDS = 6
ORTH_POOL = 12
_LETTERS = re.compile(r"[^\W\d_]+")


@attrs.frozen
class Item:
    """One multiple-choice question: ``choices[answer]`` is right."""

    prompt: str
    choices: tuple[str, ...]
    answer: int


# --- words and sentences --------------------------------------------------------------------------
def words_of(text: str) -> list[str]:
    """Distinct lower-case words of 3-12 letters, in order of first occurrence."""
    seen: dict[str, None] = {}
    for w in _LETTERS.findall(text):
        if 3 <= len(w) <= 12 and w.islower():
            seen.setdefault(w, None)
    return list(seen)


def sentences_of(text: str, size: int = SENTENCE_WORDS) -> list[list[str]]:
    """Non-overlapping windows of ``size`` consecutive words (letter runs, any case)."""
    words = _LETTERS.findall(text)
    return [words[i : i + size] for i in range(0, len(words) - size + 1, size)]


# --- transformations (pure; tested on known strings) --------------------------------------------
def spell(word: str) -> str:
    return " ".join(word)


def levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def insert_after(seq: Sequence[str], anchor: str, new: str) -> list[str]:
    out: list[str] = []
    for x in seq:
        out.append(x)
        if x == anchor:
            out.append(new)
    return out


def insert_before(seq: Sequence[str], anchor: str, new: str) -> list[str]:
    out: list[str] = []
    for x in seq:
        if x == anchor:
            out.append(new)
        out.append(x)
    return out


def delete_all(seq: Sequence[str], item: str) -> list[str]:
    return [x for x in seq if x != item]


def delete_first(seq: Sequence[str], item: str) -> list[str]:
    out = list(seq)
    out.remove(item)
    return out


def swap_first(seq: Sequence[str], a: str, b: str) -> list[str]:
    out = list(seq)
    i, j = out.index(a), out.index(b)
    out[i], out[j] = out[j], out[i]
    return out


def substitute(seq: Sequence[str], old: str, new: str) -> list[str]:
    return [new if x == old else x for x in seq]


def word_variants(word: str, rng: random.Random) -> list[str]:
    """Three misspellings of the same length: two adjacent letters swapped, one letter replaced by
    another letter of the word, two letters two apart swapped (positions drawn; a variant may equal
    the word when the letters are equal, and is then dropped by the item)."""
    i = rng.randrange(len(word) - 1)
    swapped = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    j = rng.randrange(len(word))
    others = sorted(set(word) - {word[j]})
    replaced = word[:j] + rng.choice(others) + word[j + 1 :] if others else word
    k = rng.randrange(len(word) - 2) if len(word) > 2 else 0
    far = list(word)
    if len(word) > 2:
        far[k], far[k + 2] = far[k + 2], far[k]
    return [swapped, replaced, "".join(far)]


# --- item generators ------------------------------------------------------------------------------
def _item(prompt: str, answer: str, distractors: Sequence[str], want: int, rng: random.Random) -> Item | None:
    """``want`` choices: the answer and the first distinct distractors, shuffled; None if too few."""
    choices = [answer]
    for d in distractors:
        if d not in choices:
            choices.append(d)
        if len(choices) == want:
            break
    if len(choices) < want:
        return None
    rng.shuffle(choices)
    return Item(prompt, tuple(choices), choices.index(answer))


def _q(body: str) -> str:
    return f"Question: {body} Answer:"


def gen_spell(word: str, ctx: Any, rng: random.Random) -> Item | None:
    return _item(f'Spell out the word "{word}". Answer:', spell(word), [spell(v) for v in word_variants(word, rng)], 4, rng)


def gen_spell_inverse(word: str, ctx: Any, rng: random.Random) -> Item | None:
    return _item(f'Write the word that is spelled out "{spell(word)}". Answer:', word, word_variants(word, rng), 4, rng)


def gen_contains_char(word: str, ctx: Any, rng: random.Random) -> Item | None:
    if rng.random() < 0.5:
        char, answer = rng.choice(word), "Yes"
    else:
        absent = [c for c in ctx.alphabet if c not in word]
        if not absent:
            return None
        char, answer = rng.choice(absent), "No"
    return _item(_q(f'Is there a "{char}" in "{word}"?'), answer, ["No" if answer == "Yes" else "Yes"], 2, rng)


def gen_orth(word: str, ctx: Any, rng: random.Random) -> Item | None:
    pool = [w for w in rng.sample(ctx.words, min(len(ctx.words), ORTH_POOL + 1)) if w != word][:ORTH_POOL]
    if len(pool) < 2:
        return None
    dist = sorted((levenshtein(word, w), w) for w in pool)
    near_d, near = dist[0]
    if near_d >= dist[1][0]:  # the closer one must be unique
        return None
    # the other choice: the farthest word of about the same length (length gives nothing away)
    far = [(d, w) for d, w in dist[1:] if abs(len(w) - len(near)) <= 1 and d >= near_d + 2]
    if not far:
        return None
    return _item(_q(f'Closer in Levenshtein distance to "{word}": "{near}", "{far[-1][1]}".'), near, [far[-1][1]], 2, rng)


def _new_char(word: str, ctx: Any, rng: random.Random) -> str | None:
    absent = [c for c in ctx.alphabet if c not in word]
    return rng.choice(absent) if absent else None


def gen_ins_char(word: str, ctx: Any, rng: random.Random) -> Item | None:
    anchor, new = rng.choice(word), _new_char(word, ctx, rng)
    if new is None:
        return None
    j = "".join
    answer = j(insert_after(word, anchor, new))
    return _item(_q(f'Add an "{new}" after every "{anchor}" in "{word}".'), answer,
                 [j(insert_before(word, anchor, new)), new + word, word + new, word], 4, rng)


def gen_del_char(word: str, ctx: Any, rng: random.Random) -> Item | None:
    item = rng.choice(word)
    others = [c for c in dict.fromkeys(word) if c != item]
    j = "".join
    distractors = [word, j(delete_first(word, item))]
    if others:
        distractors.append(j(delete_all(word, rng.choice(others))))
    distractors.append(j(insert_after(word, item, item)))
    return _item(_q(f'Delete every "{item}" in "{word}".'), j(delete_all(word, item)), distractors, 4, rng)


def gen_swap_char(word: str, ctx: Any, rng: random.Random) -> Item | None:
    once = [c for c in dict.fromkeys(word) if word.count(c) == 1]
    if len(once) < 3:
        return None
    a, b, c = rng.sample(once, 3)
    j = "".join
    return _item(_q(f'Swap "{a}" and "{b}" in "{word}".'), j(swap_first(word, a, b)),
                 [word, j(swap_first(word, a, c)), word[::-1]], 4, rng)


def gen_sub_char(word: str, ctx: Any, rng: random.Random) -> Item | None:
    old, new = rng.choice(word), _new_char(word, ctx, rng)
    if new is None:
        return None
    others = [c for c in dict.fromkeys(word) if c != old]
    j = "".join
    distractors = [word] + ([j(substitute(word, rng.choice(others), new))] if others else []) + [j(insert_after(word, old, new))]
    return _item(_q(f'Substitute "{old}" with "{new}" in "{word}".'), j(substitute(word, old, new)), distractors, 4, rng)


def gen_contains_word(sentence: list[str], ctx: Any, rng: random.Random) -> Item | None:
    text = " ".join(sentence)
    if rng.random() < 0.5:
        word, answer = rng.choice(sentence), "Yes"
    else:
        absent = [w for w in rng.sample(ctx.words, min(len(ctx.words), 8)) if w not in sentence]
        if not absent:
            return None
        word, answer = absent[0], "No"
    return _item(_q(f'Is there "{word}" in "{text}"?'), answer, ["No" if answer == "Yes" else "Yes"], 2, rng)


def _new_word(sentence: list[str], ctx: Any, rng: random.Random) -> str | None:
    absent = [w for w in rng.sample(ctx.words, min(len(ctx.words), 8)) if w not in sentence]
    return absent[0] if absent else None


def gen_ins_word(sentence: list[str], ctx: Any, rng: random.Random) -> Item | None:
    anchor, new = rng.choice(sentence), _new_word(sentence, ctx, rng)
    if new is None:
        return None
    j = " ".join
    return _item(_q(f'Add "{new}" after every "{anchor}" in "{j(sentence)}".'), j(insert_after(sentence, anchor, new)),
                 [j(insert_before(sentence, anchor, new)), j([new, *sentence]), j([*sentence, new]), j(sentence)], 4, rng)


def gen_del_word(sentence: list[str], ctx: Any, rng: random.Random) -> Item | None:
    item = rng.choice(sentence)
    others = [w for w in dict.fromkeys(sentence) if w != item]
    j = " ".join
    distractors = [j(sentence), j(delete_first(sentence, item))]
    if others:
        distractors.append(j(delete_all(sentence, rng.choice(others))))
    distractors.append(j(insert_after(sentence, item, item)))
    return _item(_q(f'Delete every "{item}" in "{j(sentence)}".'), j(delete_all(sentence, item)), distractors, 4, rng)


def gen_swap_word(sentence: list[str], ctx: Any, rng: random.Random) -> Item | None:
    once = [w for w in dict.fromkeys(sentence) if sentence.count(w) == 1]
    if len(once) < 3:
        return None
    a, b, c = rng.sample(once, 3)
    j = " ".join
    return _item(_q(f'Swap "{a}" and "{b}" in "{j(sentence)}".'), j(swap_first(sentence, a, b)),
                 [j(sentence), j(swap_first(sentence, a, c)), j(sentence[::-1])], 4, rng)


def gen_sub_word(sentence: list[str], ctx: Any, rng: random.Random) -> Item | None:
    old, new = rng.choice(sentence), _new_word(sentence, ctx, rng)
    if new is None:
        return None
    others = [w for w in dict.fromkeys(sentence) if w != old]
    j = " ".join
    distractors = [j(sentence)] + ([j(substitute(sentence, rng.choice(others), new))] if others else []) \
        + [j(insert_after(sentence, old, new))]
    return _item(_q(f'Substitute "{old}" with "{new}" in "{j(sentence)}".'), j(substitute(sentence, old, new)), distractors, 4, rng)


GENERATORS: dict[str, tuple[str, Callable[[Any, Any, random.Random], Item | None]]] = {
    "spell": ("word", gen_spell), "spell_inverse": ("word", gen_spell_inverse), "contains_char": ("word", gen_contains_char),
    "contains_word": ("sentence", gen_contains_word), "orth": ("word", gen_orth), "ins_char": ("word", gen_ins_char),
    "ins_word": ("sentence", gen_ins_word), "del_char": ("word", gen_del_char), "del_word": ("sentence", gen_del_word),
    "swap_char": ("word", gen_swap_char), "swap_word": ("sentence", gen_swap_word), "sub_char": ("word", gen_sub_char),
    "sub_word": ("sentence", gen_sub_word),
}


@attrs.frozen
class Context:
    """What generators draw from: the text's words, sentences and alphabet (its lower-case letters)."""

    words: list[str]
    sentences: list[list[str]]
    alphabet: list[str]

    @classmethod
    def from_text(cls, text: str) -> Context:
        words = words_of(text)
        alphabet = sorted({c for w in words for c in w})
        return cls(words, sentences_of(text), alphabet)


def make_items(task: str, context: Context, *, seed: int = 0, n: int = N_ITEMS) -> list[Item]:
    """Up to ``n`` items of ``task``, deterministic in (text, seed, task)."""
    from blt.core.errors import InputError

    if task not in GENERATORS:
        raise InputError(f"unknown character task {task!r}; choose one of {', '.join(TASKS)}")
    kind, gen = GENERATORS[task]
    rng = random.Random(f"{seed}:{task}")
    pool = list(context.words if kind == "word" else context.sentences)
    rng.shuffle(pool)
    items: list[Item] = []
    for x in pool:
        item = gen(x, context, rng)
        if item is not None:
            items.append(item)
            if len(items) == n:
                break
    return items


def score_items(items_by_task: dict[str, list[Item]],
                continuation_nats: Callable[[list[tuple[bytes, bytes]]], list[float]]) -> dict[str, dict[str, float]]:
    """``{task: {"accuracy", "chance", "n"}}``: the choice with the fewest nats (largest
    log-likelihood) of ``" " + choice`` after the prompt is the prediction; one call for all pairs."""
    pairs = [(item.prompt.encode(), (" " + choice).encode())
             for items in items_by_task.values() for item in items for choice in item.choices]
    nats = list(continuation_nats(pairs))
    if len(nats) != len(pairs):
        raise ValueError(f"scorer returned {len(nats)} scores for {len(pairs)} continuations")
    out: dict[str, dict[str, float]] = {}
    pos = 0
    for task, items in items_by_task.items():
        right = 0
        for item in items:
            scores = nats[pos : pos + len(item.choices)]
            pos += len(item.choices)
            right += int(min(range(len(scores)), key=lambda i: scores[i]) == item.answer)
        n = len(items)
        out[task] = {"accuracy": right / n if n else None,  # None (JSON null): the text gave no item
                     "chance": sum(1 / len(i.choices) for i in items) / n if n else None, "n": n}
    return out


__all__ = ["GENERATORS", "N_ITEMS", "TASKS", "Context", "Item", "delete_all", "delete_first", "insert_after",
           "insert_before", "levenshtein", "make_items", "score_items", "sentences_of", "spell", "substitute",
           "swap_first", "word_variants", "words_of"]
