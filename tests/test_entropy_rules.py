"""The entropy patch rules with given entropies: the reference's worked examples, exactly, plus properties."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from blt.core.errors import ConfigError, InputError


def tokens_like(e: torch.Tensor) -> torch.Tensor:
    return torch.full(e.shape, 4 + ord("a"), dtype=torch.long)


@pytest.fixture(params=["entropy", "cnn_entropy"])
def kind(request):
    return request.param


def build(registry, kind, **fields):
    return registry.build_patcher({"kind": kind, **fields})


E_2D = torch.tensor([[0, 5, 0, 0, 5, 0], [0, 0, 0, 0, 0, 0]], dtype=torch.float32)
E_MONO = torch.tensor([9, 1, 3, 2, 5, 4.5, 6])


def test_global_example_2d(registry, kind):
    p = build(registry, kind, threshold=1.0)
    out = p.patch(tokens_like(E_2D), entropies=E_2D)
    assert out.lengths.tolist() == [[1, 1, 3, 1], [1, 5, 0, 0]]
    assert out.starts().tolist() == [[0, 1, 2, 5], [0, 1, 6, 6]]
    nxt = p.patch(tokens_like(E_2D), entropies=E_2D, include_next_token=True)
    assert nxt.lengths.tolist() == [[1, 1, 3, 2], [1, 6, 0, 0]]
    assert torch.equal(out.scores, E_2D)


def test_global_is_strict(registry, kind):
    e = torch.tensor([0.0, 1.0, 2.0, 1.0, 1.0])
    # e[1] = e[3] = 1.0 are not > 1.0, so positions 2 and 4 do not start; e[2] = 2.0 > 1.0 makes 3 a start.
    assert build(registry, kind, threshold=1.0).patch(tokens_like(e), entropies=e).lengths.tolist() == [1, 2, 2]
    assert build(registry, kind, threshold=0.999).patch(tokens_like(e), entropies=e).lengths.tolist() == [1, 1, 1, 1, 1]


def test_relative_example_1d(registry, kind):
    p = build(registry, kind, relative_threshold=0.5)
    assert p.patch(tokens_like(E_MONO), entropies=E_MONO).starts().tolist() == [0, 1, 2, 3, 5]
    out = p.patch(tokens_like(E_MONO), entropies=E_MONO, include_next_token=True)
    assert out.starts().tolist() == [0, 1, 2, 3, 5, 7]
    assert out.lengths.tolist() == [1, 1, 1, 2, 2, 1]
    assert out.lengths.dim() == 1 and out.scores.dim() == 1


def test_relative_position_two_always_starts(registry, kind):
    e = torch.zeros(5)
    assert build(registry, kind, relative_threshold=100.0).patch(tokens_like(e), entropies=e).lengths.tolist() == [1, 1, 3]


def test_max_patch_length_split(registry, kind):
    # Lengths [1, 9, 4] before splitting -> [1, 4, 4, 1, 4] with m = 4 (split left to right).
    e = torch.zeros(14)
    e[9] = 5.0  # position 10 starts
    out = build(registry, kind, threshold=1.0, max_patch_length=4).patch(tokens_like(e), entropies=e)
    assert out.lengths.tolist() == [1, 4, 4, 1, 4]
    e2 = torch.stack([e, torch.zeros(14)])
    out2 = build(registry, kind, threshold=1.0, max_patch_length=4).patch(tokens_like(e2), entropies=e2)
    assert out2.lengths.tolist() == [[1, 4, 4, 1, 4], [1, 4, 4, 4, 1]]


def test_short_rows(registry, kind):
    p = build(registry, kind, threshold=0.0)
    for n, inc, want in [(1, False, [1]), (1, True, [1, 1]), (2, False, [1, 1]), (2, True, [1, 1, 1])]:
        e = torch.ones(n)
        assert p.patch(tokens_like(e), entropies=e, include_next_token=inc).lengths.tolist() == want


def test_config_errors_name_fields(registry, kind):
    with pytest.raises(ConfigError, match="threshold.*relative_threshold"):
        build(registry, kind, threshold=1.0, relative_threshold=0.5)
    with pytest.raises(ConfigError, match="model_path"):
        build(registry, kind, model_path="x.safetensors")
    with pytest.raises(ConfigError, match=r"\$\.patcher\.batch_size"):
        build(registry, kind, batch_size=0)


def test_bad_entropies(registry, kind):
    p = build(registry, kind, threshold=1.0)
    with pytest.raises(InputError, match="shape"):
        p.patch(torch.full((2, 5), 10), entropies=torch.zeros(2, 4))
    with pytest.raises(InputError, match="float"):
        p.patch(torch.full((5,), 10), entropies=torch.zeros(5, dtype=torch.long))
    with pytest.raises(InputError, match="NaN"):
        p.patch(torch.full((3,), 10), entropies=torch.tensor([0.0, float("nan"), 1.0]))


rows = st.integers(1, 4).flatmap(lambda b: st.integers(0, 40).flatmap(
    lambda n: st.lists(st.lists(st.floats(0, 6, width=32), min_size=n, max_size=n), min_size=b, max_size=b)))


@given(rows, st.sampled_from([("threshold", 2.0), ("relative_threshold", 0.3)]), st.none() | st.integers(1, 5), st.booleans())
def test_given_entropies_properties(registry, data, rule, m, inc):
    """Rows sum to N (+1), each row equals itself alone, every prefix is patched as the full row (incremental),
    and the starts are exactly the rule's, computed here by a plain Python loop."""
    e = torch.tensor(data, dtype=torch.float32)
    B, N = e.shape
    p = registry.build_patcher({"kind": "entropy", rule[0]: rule[1], "max_patch_length": m})
    out = p.patch(tokens_like(e), entropies=e, include_next_token=inc)
    assert out.lengths.sum(1).tolist() == [N + inc] * B
    for b in range(B):
        row = e[b].tolist()
        want, last = [], 0
        for q in range(N + inc):  # the reference rule, position by position
            if q < 2:
                s = True
            elif rule[0] == "threshold":
                s = row[q - 1] > rule[1]
            else:
                s = q == 2 or row[q - 1] - row[q - 2] > rule[1]
            if s or (m is not None and q - last == m):
                want.append(q)
                last = q
        got = out.starts()[b][out.lengths[b] > 0].tolist()
        assert got == want
        alone = p.patch(tokens_like(e[b]), entropies=e[b], include_next_token=inc).lengths
        assert alone.tolist() == out.lengths[b][out.lengths[b] > 0].tolist()
        for i in range(N + 1):
            pre = p.patch(tokens_like(e[b, :i]), entropies=e[b, :i]).starts()
            assert pre.tolist() == [s for s in want if s < i]


def test_float64_entropies_compare_in_float64(registry, kind):
    # 1 + 1e-9 rounds to 1.0 in float32; read exactly it is > 1.0, so position 2 starts a patch.
    e = torch.tensor([0.0, 1.0 + 1e-9, 0.0, 1.0, 0.0], dtype=torch.float64)
    out = build(registry, kind, threshold=1.0).patch(tokens_like(e), entropies=e)
    assert out.lengths.tolist() == [1, 1, 3]
    assert out.scores.dtype == torch.float64 and torch.equal(out.scores, e)
    rel = torch.tensor([0.0, 1.0, 1.0 + 0.5 + 1e-9, 0.0], dtype=torch.float64)
    assert build(registry, kind, relative_threshold=0.5).patch(tokens_like(rel), entropies=rel).lengths.tolist() == [1, 1, 1, 1]
