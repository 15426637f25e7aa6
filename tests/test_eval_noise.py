"""The five perturbations on known strings, their properties, and BPB per original byte."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from blt.core.errors import InputError
from blt.evaluation import noise
from blt.evaluation.suites import noise_increase, run_noise, run_suite

FOX = "The quick brown fox jumps over the lazy dog"


def test_known_strings_seed_0():
    got = {name: noise.apply_noise(name, FOX, seed=0, doc_id="d") for name in noise.NOISES}
    assert got == {
        "antspeak": "T H E   Q U I C K   B R O W N   F O X   J U M P S   O V E R   T H E   L A Z Y   D O G",
        "drop": "The quik brwn fox jumps over he laz dog",  # round(0.1 * 43) = 4 characters gone
        "random_case": "the QuiCk BROWn fOX juMPS ovER ThE LAZY Dog",
        "repeat": "The quick    brownn    fffox    jumps ooovvverrrr  the lazy dog",  # 9 characters, 2-4 times each
        "upper_case": "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG",
    }


def test_unicode_characters_not_bytes():
    assert noise.apply_noise("antspeak", "Hi σου", seed=0, doc_id="d") == "H I   Σ Ο Υ"
    assert noise.apply_noise("upper_case", "straße", seed=0, doc_id="d") == "STRASSE"
    out = noise.noised_bytes("drop", "東京カタカナ한국어Привет".encode(), seed=0, doc_id="d")
    text = out.decode("utf-8")  # whole characters dropped: still valid UTF-8
    assert len(text) == 15 - round(1.5) and all(c in "東京カタカナ한국어Привет" for c in text)
    assert noise.noised_bytes("upper_case", b"ab\xff\xfe", seed=0, doc_id="d") == b"AB\xff\xfe"  # invalid bytes kept


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=60), st.integers(0, 2**31))
def test_drop_removes_a_tenth(text, seed):
    out = noise.drop(text, noise.noise_rng(seed, "drop", "x"))
    assert len(out) == len(text) - round(0.1 * len(text))
    it = iter(text)
    assert all(c in it for c in out)  # a subsequence of the original


@given(st.integers(1, 60), st.integers(0, 2**31))
def test_repeat_repeats_a_fifth_up_to_four_times(n, seed):
    text = "".join(chr(0x4E00 + i) for i in range(n))  # distinct characters: runs show the repeats
    out = noise.repeat(text, noise.noise_rng(seed, "repeat", "x"))
    runs = [(c, len(list(g))) for c, g in itertools.groupby(out)]
    assert "".join(c for c, _ in runs) == text
    assert all(k in (1, 2, 3, 4) for _, k in runs)
    assert sum(k > 1 for _, k in runs) == round(0.2 * n)


@given(st.text(alphabet="abcXYZ 1.", max_size=50), st.integers(0, 2**31))
def test_case_noises(text, seed):
    upper = noise.upper_case(text)
    assert noise.upper_case(upper) == upper  # idempotent
    anted = noise.antspeak(text)
    assert anted[::2] == upper and set(anted[1::2]) <= {" "}
    mixed = noise.random_case(text, noise.noise_rng(seed, "random_case", "x"))
    assert mixed.lower() == text.lower()


def test_seeded_per_document_and_deterministic():
    long = FOX * 5
    a = noise.apply_noise("drop", long, seed=3, doc_id="a")
    assert a == noise.apply_noise("drop", long, seed=3, doc_id="a")
    assert a != noise.apply_noise("drop", long, seed=4, doc_id="a")
    assert a != noise.apply_noise("drop", long, seed=3, doc_id="b")
    with pytest.raises(InputError, match="unknown noise 'shout'"):
        noise.apply_noise("shout", long, seed=0, doc_id="a")


class OneNatPerByte:
    """A fake scorer: every byte costs 1 nat."""

    def document_nats(self, docs, *, batch_size=8, progress=None):
        return [np.ones(len(d)) for d in docs]


def test_bpb_is_per_original_byte():
    docs = [("d1", "s", b"Hi you"), ("d2", "s", "σου".encode())]
    out = run_suite("noise", OneNatPerByte(), docs, seed=0)
    assert list(out) == ["clean", "antspeak", "drop", "random_case", "repeat", "upper_case"]
    n = 6 + 6  # original bytes
    assert math.isclose(out["clean"], 1 / math.log(2))
    assert math.isclose(out["antspeak"], (len("H I   Y O U") + len("Σ Ο Υ".encode())) / n / math.log(2))
    assert math.isclose(out["drop"], (5 + 6) / n / math.log(2))  # one of 6 characters gone, none of 3
    assert math.isclose(out["upper_case"], out["clean"])
    assert noise_increase(out)["antspeak"] == pytest.approx(out["antspeak"] - out["clean"])
    assert run_noise(OneNatPerByte(), docs, max_bytes=6) == run_noise(OneNatPerByte(), docs[:1])
