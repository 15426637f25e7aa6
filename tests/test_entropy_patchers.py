"""The entropy patchers with model-computed entropies (shipped models): contracts, word starts, repetition."""

from __future__ import annotations

import random

import pytest
import torch

from blt.corpus import load_builtin_corpus
from blt.entropy import shipped_model_path
from blt.tokens import OFFSET, encode

KINDS = ("entropy", "cnn_entropy")
pytestmark = pytest.mark.skipif(
    not all(shipped_model_path(k).is_file() for k in ("transformer", "cnn")), reason="shipped entropy models not built"
)


@pytest.fixture(scope="module")
def patchers(registry):
    return {kind: registry.build_patcher({"kind": kind}) for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_contract_suite_with_model_entropies(registry, kind):
    from blt.testing import check_patcher

    results = check_patcher(kind, registry=registry, max_examples=5 if kind == "entropy" else 8)
    assert all(r.passed for r in results)
    assert any(r.name.startswith("incremental") for r in results)


@pytest.mark.parametrize("kind", KINDS)
def test_realtime_equals_given_and_batch_independent(patchers, kind):
    p = patchers[kind]
    texts = ["In the beginning God created the heaven and the earth.", "def f(x):\n    return x + 1\n", "床前明月光"]
    rows = [encode(t) for t in texts]
    batch = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)
    out = p.patch(batch, include_next_token=True)
    assert out.scores.shape == batch.shape and out.scores.dtype == torch.float32
    again = p.patch(batch, include_next_token=True, entropies=out.scores)
    assert torch.equal(again.lengths, out.lengths)
    for b, row in enumerate(rows):
        alone = p.patch(row)
        torch.testing.assert_close(alone.scores, out.scores[b, : row.numel()], atol=2e-5, rtol=0)
        # the padded row's patches over its own tokens equal the row alone (incremental + independent)
        starts = out.starts()[b][out.lengths[b] > 0]
        assert starts[starts < row.numel()].tolist() == alone.starts().tolist()
        for cut in (1, 5, row.numel() // 2):
            assert p.patch(row[:cut]).starts().tolist() == [s for s in alone.starts().tolist() if s < cut]


def word_start_fraction(tokens: torch.Tensor, starts: torch.Tensor) -> tuple[float, float]:
    """(fraction of patch starts p >= 2 at a word start, fraction of all positions that are word starts).
    A word start is an ASCII letter or digit whose previous byte is not one."""
    b = tokens - OFFSET
    alnum = ((b >= 48) & (b <= 57)) | ((b >= 65) & (b <= 90)) | ((b >= 97) & (b <= 122))
    word_start = alnum & ~torch.nn.functional.pad(alnum, (1, 0))[:-1]
    s = starts[starts >= 2]
    return float(word_start[s].float().mean()), float(word_start[2:].float().mean())


@pytest.fixture(scope="module")
def kjv_heldout():
    docs = [d.text for d in load_builtin_corpus("heldout", sources=["kjv"])]
    return docs[:3]  # ~10 KB of prose


@pytest.mark.parametrize("kind,lower_bound", [("entropy", 0.6), ("cnn_entropy", 0.4)])
def test_boundaries_fall_mostly_at_word_starts(patchers, kjv_heldout, kind, lower_bound):
    hits = total = base = 0.0
    sizes = []
    for text in kjv_heldout:
        tokens = encode(text)
        out = patchers[kind].patch(tokens)
        frac, base_frac = word_start_fraction(tokens, out.starts())
        n = int((out.starts() >= 2).sum())
        hits, total, base = hits + frac * n, total + n, base + base_frac * n
        sizes.append(tokens.numel() / out.lengths.numel())
    fraction = hits / total
    print(f"\n{kind}: {fraction:.3f} of boundaries at word starts (chance {base / total:.3f}); "
          f"mean patch size {sum(sizes) / len(sizes):.2f} bytes on held-out KJV")
    assert fraction > lower_bound
    assert fraction > 2 * base / total


@pytest.mark.parametrize("kind", KINDS)
def test_repetitive_text_gets_fewer_patches_than_random_bytes(patchers, kind):
    rng = random.Random(0)
    repetitive = encode("the cat sat on the mat. " * 60)
    noise = encode(bytes(rng.randrange(256) for _ in range(repetitive.numel() - 2)))
    per_byte = {name: patchers[kind].patch(t).lengths.numel() / t.numel() for name, t in (("rep", repetitive), ("rand", noise))}
    print(f"\n{kind}: patches/byte repetitive {per_byte['rep']:.3f}, random {per_byte['rand']:.3f}")
    assert per_byte["rep"] < 0.75 * per_byte["rand"]
