"""CUTE-style character tasks: the transformations, every generator on known strings, and scoring."""

from __future__ import annotations

import random

import pytest

from blt.core.errors import InputError
from blt.evaluation import chars as c
from blt.evaluation.suites import run_suite

CTX = c.Context(words=["planet", "plane", "orange", "cat", "house", "river", "garden"], sentences=[],
                alphabet=list("abcdefghijklmnopqrstuvwxyz"))
SENTENCE = "the cat sat on a mat".split()


def test_transformations_on_known_strings():
    j = "".join
    assert c.spell("cat") == "c a t"
    assert j(c.insert_after("not", "n", "z")) == "nzot"  # CUTE's own example
    assert j(c.insert_before("banana", "a", "x")) == "bxanxanxa"
    assert j(c.swap_first("that", "h", "a")) == "taht"
    assert j(c.substitute("page", "a", "m")) == "pmge"
    assert j(c.delete_all("banana", "a")) == "bnn" and j(c.delete_first("banana", "a")) == "bnana"
    assert c.levenshtein("kitten", "sitting") == 3 and c.levenshtein("", "abc") == 3 and c.levenshtein("ab", "ab") == 0
    assert c.swap_first(SENTENCE, "cat", "mat") == "the mat sat on a cat".split()


def test_words_and_sentences():
    text = "The cat sat; the cat ran. Über-große Ähre, x1y and 東京 mat"
    assert c.words_of(text) == ["cat", "sat", "the", "ran", "große", "and", "mat"]  # lower-case, 3-12 letters, distinct
    assert c.sentences_of("a b c d e f g h i j k l m", size=6) == [list("abcdef"), list("ghijkl")]


# (prompt, right answer, all choices) for each generator with random.Random(0) on "planet" / SENTENCE
EXPECTED = {
    "spell": ('Spell out the word "planet". Answer:', "p l a n e t", {"p l a n e t", "p l a a e t", "p l a e n t", "p l e n a t"}),
    "spell_inverse": ('Write the word that is spelled out "p l a n e t". Answer:', "planet", {"planet", "plaaet", "plaent", "plenat"}),
    "contains_char": ('Question: Is there a "s" in "planet"? Answer:', "No", {"Yes", "No"}),
    "contains_word": ('Question: Is there "garden" in "the cat sat on a mat"? Answer:', "No", {"Yes", "No"}),
    "orth": ('Question: Closer in Levenshtein distance to "planet": "plane", "river". Answer:', "plane", {"plane", "river"}),
    "ins_char": ('Question: Add an "s" after every "n" in "planet". Answer:', "planset", {"planets", "splanet", "plasnet", "planset"}),
    "ins_word": ('Question: Add "garden" after every "on" in "the cat sat on a mat". Answer:', "the cat sat on garden a mat",
                 {"the cat sat on garden a mat", "the cat sat on a mat garden", "the cat sat garden on a mat",
                  "garden the cat sat on a mat"}),
    "del_char": ('Question: Delete every "n" in "planet". Answer:', "plaet", {"plannet", "plant", "planet", "plaet"}),
    "del_word": ('Question: Delete every "on" in "the cat sat on a mat". Answer:', "the cat sat a mat",
                 {"the cat sat on on a mat", "the cat sat on mat", "the cat sat on a mat", "the cat sat a mat"}),
    "swap_char": ('Question: Swap "n" and "t" in "planet". Answer:', "platen", {"platen", "planet", "tenalp", "nlapet"}),
    "swap_word": ('Question: Swap "on" and "mat" in "the cat sat on a mat". Answer:', "the cat sat mat a on",
                  {"the cat sat mat a on", "the cat sat on a mat", "mat a on sat cat the", "on cat sat the a mat"}),
    "sub_char": ('Question: Substitute "n" with "s" in "planet". Answer:', "plaset", {"plaset", "planet", "planset", "slanet"}),
    "sub_word": ('Question: Substitute "on" with "garden" in "the cat sat on a mat". Answer:', "the cat sat garden a mat",
                 {"the cat garden on a mat", "the cat sat garden a mat", "the cat sat on a mat", "the cat sat on garden a mat"}),
}


@pytest.mark.parametrize("task", c.TASKS)
def test_every_generator_on_known_strings(task):
    kind, gen = c.GENERATORS[task]
    item = gen("planet" if kind == "word" else SENTENCE, CTX, random.Random(0))
    prompt, answer, choices = EXPECTED[task]
    assert item.prompt == prompt
    assert item.choices[item.answer] == answer
    assert set(item.choices) == choices and len(item.choices) == len(choices)


def test_generators_refuse_items_they_cannot_make():
    rng = random.Random(0)
    assert c.gen_swap_char("that", CTX, rng) is None  # only "h" and "a" occur once: no third letter for a distractor
    assert c.gen_orth("planet", c.Context(["planet", "cat"], [], ["a"]), rng) is None
    assert c.gen_orth("planet", c.Context(["planet", "plane", "riverbanks"], [], ["a"]), rng) is None  # no far word of its length
    variants = c.word_variants("planet", random.Random(5))
    assert all(len(v) == 6 and set(v) <= set("planet") for v in variants)  # same length, the word's own letters


def test_make_items_deterministic_and_valid():
    text = ("In the beginning God created the heaven and the earth. And the earth was without form, and void; "
            "and darkness was upon the face of the deep. And the Spirit of God moved upon the face of the waters.")
    ctx = c.Context.from_text(text)
    for task in c.TASKS:
        items = c.make_items(task, ctx, seed=1, n=5)
        assert items == c.make_items(task, ctx, seed=1, n=5)
        assert 1 <= len(items) <= 5, task
        for item in items:
            assert len(set(item.choices)) == len(item.choices) and 0 <= item.answer < len(item.choices)
    assert c.make_items("spell", ctx, seed=1) != c.make_items("spell", ctx, seed=2)
    with pytest.raises(InputError, match="unknown character task 'spel'"):
        c.make_items("spel", ctx)


def test_scoring_by_hand():
    items = {
        "a": [c.Item("p", ("xx", "y"), 1), c.Item("p", ("zzz", "w", "vv"), 1)],  # shortest choice right twice
        "b": [c.Item("p", ("u", "tt"), 1), c.Item("p", ("ss", "rrr"), 0)],      # right, wrong ... then wrong
        "empty": [],
    }
    seen = []

    def nats(pairs):  # a fake scorer: a continuation costs its length
        seen.extend(pairs)
        return [float(len(cont)) for _, cont in pairs]

    out = c.score_items(items, nats)
    assert seen[0] == (b"p", b" xx") and len(seen) == 9
    assert out["a"] == {"accuracy": 1.0, "chance": (1 / 2 + 1 / 3) / 2, "n": 2}
    assert out["b"] == {"accuracy": 0.5, "chance": 0.5, "n": 2}
    assert out["empty"] == {"accuracy": None, "chance": None, "n": 0}


class ShortestWins:
    def continuation_nats(self, pairs, *, batch_size=8, progress=None):
        return [float(len(cont)) for _, cont in pairs]


def test_chars_suite_shape():
    docs = [("d", "s", b"the quick brown fox jumps over the lazy dog while seven planets turn around their bright stars " * 3)]
    out = run_suite("chars", ShortestWins(), docs, seed=0)
    assert list(out) == list(c.TASKS)
    for task, row in out.items():
        assert set(row) == {"accuracy", "chance", "n"} and row["n"] >= 1, task
        assert row["chance"] == (0.5 if task in ("contains_char", "contains_word", "orth") else 0.25)
    with pytest.raises(InputError, match="found no words"):
        run_suite("chars", ShortestWins(), [("d", "s", "東京 12 ab".encode())])
    with pytest.raises(InputError, match="unknown suite 'char'; choose one of noise, chars"):
        run_suite("char", ShortestWins(), docs)
