"""The ``bpe`` patcher: training, save/reload, exact byte lengths, errors, non-incrementality."""

from __future__ import annotations

import pytest
import torch

import blt.tokens
from blt.core.errors import ConfigError
from blt.plugins.patchers.bpe import BYTE_TO_CHAR, BpeConfig, BpePatcher, default_tokenizer_path, train_bpe_tokenizer
from blt.testing import find_incremental_counterexample, incremental_violation

TEXTS = ["héllo wörld, the naïve café 日本語 😀 héllo héllo"] * 20 + ["the cat and the hat in the thing"] * 20


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory):
    return train_bpe_tokenizer(TEXTS, 320, tmp_path_factory.mktemp("bpe") / "tok.json")


@pytest.fixture(scope="module")
def patcher(tokenizer_file):
    return BpePatcher(BpeConfig(tokenizer_path=str(tokenizer_file)))


def test_training_is_deterministic_and_reloads(tokenizer_file, tmp_path):
    again = train_bpe_tokenizer(TEXTS, 320, tmp_path / "again.json")
    assert again.read_bytes() == tokenizer_file.read_bytes()
    reloaded = BpePatcher(BpeConfig(tokenizer_path=str(again)))
    assert 256 < reloaded.tokenizer.get_vocab_size() <= 320  # small texts may run out of merges


def test_lengths_are_bytes_not_characters(patcher):
    # "héllo" is a frequent word: one BPE token of 5 characters but 6 bytes.
    assert patcher.tokenizer.encode("héllo", add_special_tokens=False).tokens == ["h" + BYTE_TO_CHAR[0xC3] + BYTE_TO_CHAR[0xA9] + "llo"]
    assert patcher.patch(blt.tokens.encode("héllo")).lengths.tolist() == [1, 6, 1]


@pytest.mark.parametrize("text", ["héllo wörld 日本語 😀 the thing", "naïve 😀😀 café", "x"])
def test_patches_are_the_tokenizers_tokens_mapped_back_to_bytes(patcher, text):
    inverse = {c: b for b, c in enumerate(BYTE_TO_CHAR)}
    token_bytes = [bytes(inverse[c] for c in tok) for tok in patcher.tokenizer.encode(text).tokens]
    assert b"".join(token_bytes) == text.encode()
    got = patcher.patch(blt.tokens.encode(text)).lengths.tolist()
    assert got == [1, *(len(t) for t in token_bytes), 1]  # BOS and EOS are patches of their own


def test_invalid_utf8_bytes_are_their_own_pretoken(patcher):
    tokens = blt.tokens.encode(b"h\xff\xfello")
    lengths = patcher.patch(tokens).lengths
    starts = set((torch.cumsum(lengths, 0) - lengths).tolist())
    assert lengths.sum() == len(tokens)
    assert {2, 4} <= starts  # the invalid run b"\xff\xfe" (positions 2-3) is cut off from "h" and "llo"


def test_special_tokens_are_patches_of_their_own(patcher):
    row = torch.cat([blt.tokens.encode("the cat"), blt.tokens.encode("the hat")])
    lengths = patcher.patch(row).lengths.tolist()
    assert sum(lengths) == len(row)
    starts = [sum(lengths[:i]) for i in range(len(lengths))]
    for special_pos in (0, 8, 9, 17):  # BOS, EOS, BOS, EOS
        assert special_pos in starts and (special_pos + 1 in starts or special_pos + 1 == len(row))


def test_include_next_token_always_starts_a_new_patch(patcher):
    tokens = blt.tokens.encode("the cat", eos=False)
    without = patcher.patch(tokens).lengths.tolist()
    assert patcher.patch(tokens, include_next_token=True).lengths.tolist() == [*without, 1]


def test_missing_tokenizer_file_is_a_one_line_config_error(registry, tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(ConfigError, match="tokenizer file not found") as info:
        registry.build_patcher({"kind": "bpe", "tokenizer_path": str(missing)})
    assert str(missing) in str(info.value) and "\n" not in str(info.value)


def test_a_file_that_is_not_a_byte_level_bpe_is_rejected(tmp_path):
    from tokenizers import Tokenizer, models

    path = tmp_path / "wordlevel.json"
    Tokenizer(models.WordLevel({"a": 0}, unk_token="a")).save(str(path))
    with pytest.raises(ConfigError, match="not a byte-level BPE"):
        BpePatcher(BpeConfig(tokenizer_path=str(path)))
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot load tokenizer file"):
        BpePatcher(BpeConfig(tokenizer_path=str(tmp_path / "junk.json")))


def test_default_tokenizer_is_trained_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("BLT_CACHE_DIR", str(tmp_path))
    path = default_tokenizer_path(300)
    assert path.parent == tmp_path and path.is_file()
    mtime = path.stat().st_mtime_ns
    assert default_tokenizer_path(300) == path and path.stat().st_mtime_ns == mtime


def test_bpe_is_not_incremental_shrunk_counterexample(registry):
    patcher = registry.build_patcher("bpe")  # the default tokenizer, trained on the built-in corpus
    example = find_incremental_counterexample(patcher, include_next_token=False)
    assert example is not None, "BPE declares incremental=False; the suite must find why"
    print(f"\nshrunk BPE counterexample: {example}")
    assert len(example.tokens) <= 12  # shrunk to a handful of bytes
    assert incremental_violation(patcher, example.tokens, (False,)) is not None
    assert example.prefix_lengths != example.restricted_lengths
    # reproduce it by hand: the prefix's BPE tokens are not the full text's tokens cut short
    prefix = patcher.patch(example.tokens[: example.prefix_len]).lengths.tolist()
    assert prefix == example.prefix_lengths
