"""The rule-based patchers against the documented rules, worked by hand."""

from __future__ import annotations

import pytest
import torch

import blt.tokens
from blt.core.errors import InputError


def lengths(registry, config, data, *, nxt=False):
    tokens = data if isinstance(data, torch.Tensor) else blt.tokens.encode(data)
    return registry.build_patcher(config).patch(tokens, include_next_token=nxt).lengths.tolist()


@pytest.mark.parametrize(("n", "k", "nxt", "want"), [
    (10, 4, False, [4, 4, 2]), (10, 4, True, [4, 4, 3]), (8, 4, False, [4, 4]), (8, 4, True, [4, 4, 1]),
    (3, 1, False, [1, 1, 1]), (0, 4, False, []), (0, 4, True, [1]), (1, 4, False, [1]),
])
def test_strided_cuts_every_k_tokens_from_zero(registry, n, k, nxt, want):
    tokens = torch.full((n,), 100, dtype=torch.long)
    assert lengths(registry, {"kind": "strided", "patch_size": k}, tokens, nxt=nxt) == want


def test_byte_is_one_patch_per_token(registry):
    assert lengths(registry, "byte", "ab") == [1, 1, 1, 1]
    assert lengths(registry, "byte", "ab", nxt=True) == [1, 1, 1, 1, 1]


@pytest.mark.parametrize(("text", "nxt", "want"), [
    ("Hello world", False, [1, 6, 6]),                 # <bos> | "Hello " | "world<eos>"
    ("Hello world", True, [1, 6, 6, 1]),               # EOS is marked, so the next token starts a patch
    ("a é b", False, [1, 2, 3, 2]),                   # é's lead byte 0xC3 is space-like, 0xA9 is not
    ("a  b", False, [1, 2, 3]),                        # a run of spaces: the first ends the patch
    (" x", False, [1, 3]),                             # after BOS a leading space is not marked
    ("日本", False, [1, 4, 3]),                        # 本's lead byte follows a continuation byte: marked
    (b"\xff\xfe ab", False, [1, 6]),                   # invalid UTF-8 is just bytes
    (b"\xff\xfe ab", True, [1, 6, 1]),
])
def test_space_rule_examples(registry, text, nxt, want):
    assert lengths(registry, "space", text, nxt=nxt) == want


def test_space_rule_matches_its_definition_position_by_position(registry):
    tokens = blt.tokens.encode("x_1, y.z  €9\n")
    got = registry.build_patcher("space").patch(tokens).lengths
    starts = set((torch.cumsum(got, 0) - got).tolist())
    word = [(48 <= b <= 57) or (65 <= b <= 90) or (97 <= b <= 122) or (0x80 <= b <= 0xBF) for b in (t - 4 for t in tokens.tolist())]
    space_like = [t < 4 or not w for t, w in zip(tokens.tolist(), word, strict=True)]
    marked = [t < 4 or (s and (i == 0 or not space_like[i - 1])) for i, (t, s) in enumerate(zip(tokens.tolist(), space_like, strict=True))]
    want = {0, 1} | {p for p in range(2, len(tokens)) if marked[p - 1]}
    assert starts == want


@pytest.mark.parametrize("kind", ["strided", "byte", "space", "bpe"])
def test_empty_and_single_token_inputs(registry, kind):
    empty = torch.zeros(0, dtype=torch.long)
    patcher = registry.build_patcher(kind)
    out = patcher.patch(empty).lengths
    assert out.shape == (0,) and out.dtype == torch.long
    assert patcher.patch(empty, include_next_token=True).lengths.tolist() == [1]
    assert patcher.patch(torch.tensor([1])).lengths.tolist() == [1]
    assert patcher.patch(torch.zeros(2, 0, dtype=torch.long)).lengths.shape == (2, 0)


@pytest.mark.parametrize("kind", ["space", "bpe"])
def test_dynamic_kinds_start_at_zero_and_one(registry, kind):
    out = lengths(registry, kind, "abcdefgh")
    assert out[0] == 1 and sum(out) == 10


def test_one_and_two_dimensional_inputs_agree_and_ragged_rows_are_zero_padded(registry):
    patcher = registry.build_patcher("space")
    a, b = blt.tokens.encode("one two three"), blt.tokens.encode("four")
    batch = torch.stack([a, torch.cat([b, torch.full((len(a) - len(b),), 2)])])
    out = patcher.patch(batch).lengths
    assert out.dim() == 2 and out.shape[0] == 2
    alone = patcher.patch(a).lengths.tolist()
    assert out[0].tolist() == alone + [0] * (out.shape[1] - len(alone))  # zero-padded on the right
    assert out.sum(1).tolist() == [len(a), len(a)]
    assert (out[1] > 0).all()  # the EOS-padded row has the most patches: each EOS is its own


def test_max_patch_length_splits_left_to_right(registry):
    # "abcdefgh ijk" patches as [1, 9, 4] with space; m = 4 gives [1, 4, 4, 1, 4] (the reference's worked example).
    assert lengths(registry, "space", "abcdefgh ijk") == [1, 9, 4]
    assert lengths(registry, {"kind": "space", "max_patch_length": 4}, "abcdefgh ijk") == [1, 4, 4, 1, 4]
    assert lengths(registry, {"kind": "strided", "patch_size": 9, "max_patch_length": 4}, torch.ones(9, dtype=torch.long)) == [4, 4, 1]
    assert lengths(registry, {"kind": "byte", "max_patch_length": 1}, "ab") == [1, 1, 1, 1]


def test_max_patch_length_in_a_ragged_batch_keeps_zero_padding(registry):
    patcher = registry.build_patcher({"kind": "space", "max_patch_length": 4})
    long_row = blt.tokens.encode("abcdefgh ijk")
    short = torch.cat([blt.tokens.encode("ab", eos=False), torch.full((len(long_row) - 3,), 4 + ord("z"))])
    out = patcher.patch(torch.stack([long_row, short])).lengths.tolist()
    assert out[0] == [1, 4, 4, 1, 4]
    assert out[1] == [1, 4, 4, 4, 1]


@pytest.mark.parametrize("bad", [torch.tensor([1.0, 2.0]), torch.tensor([[[1]]]), torch.tensor([1, 260]), torch.tensor([-1])])
def test_bad_token_tensors_raise_input_error(registry, bad):
    with pytest.raises(InputError):
        registry.build_patcher("strided").patch(bad)
