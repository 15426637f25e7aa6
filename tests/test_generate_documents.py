"""Generation patches each document of a row alone, as the data pipeline does (issue 15).

A row may hold an EOS (in its prompt, or generated with ``stop_at_eos=False``); the position after
it opens a new document, patched as ``blt.data.store.patch_document`` patches a document: its
first positions start patches, strided counts from it, the entropy model reads it alone.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from blt.data.store import patch_document
from blt.generate.documents import document_spans, row_lengths
from blt.generate.patch_starts import PatchStarts
from blt.model.layout import split_first_patch
from blt.tokens import EOS_ID
from _generate_helpers import ALPHABET, PATCHERS, as_ids, get_patcher

pytestmark = pytest.mark.usefixtures("one_thread")
rows = st.lists(st.sampled_from(list(ALPHABET) + [-2]), min_size=1, max_size=16)


def starts_of(lengths_P: torch.Tensor) -> list[int]:
    return (torch.cumsum(lengths_P, 0) - lengths_P)[lengths_P > 0].tolist()


@settings(max_examples=40)
@given(data=st.data())
def test_row_lengths_patch_every_document_alone(registry, entropy_files, data):
    """The oracle's rule equals the data pipeline's: each document patched alone, concatenated."""
    patcher = get_patcher(registry, data.draw(st.sampled_from(PATCHERS), label="patcher"), entropy_files)
    ids = as_ids(data.draw(rows, label="row"))
    tokens = torch.tensor(ids)
    docs = [patch_document(patcher, tokens[lo:hi]) for lo, hi in document_spans(ids)]
    expected = torch.cat([torch.from_numpy(d).long() for d in docs])
    got = row_lengths(patcher, tokens)
    assert int(got.sum()) == len(ids) + 1
    if ids[-1] == EOS_ID:  # the next position opens a new document
        assert got.tolist() == expected.tolist() + [1]
    else:  # the next position joins the last document's last patch or starts one
        grown = expected.tolist()[:-1] + [int(expected[-1]) + 1]
        assert got.tolist() in (expected.tolist() + [1], grown)


@settings(max_examples=40)
@given(data=st.data())
def test_incremental_starts_equal_the_oracle_across_documents(registry, entropy_files, data):
    """Stepping the patcher byte by byte gives the start of every next position that re-patching
    the prefix (documents alone, BOS its own patch) gives, for rows holding EOS anywhere."""
    name = data.draw(st.sampled_from(PATCHERS), label="patcher")
    patcher = get_patcher(registry, name, entropy_files)
    batch = [as_ids(r) for r in data.draw(st.lists(rows, min_size=1, max_size=3), label="rows")]
    n = min(len(r) for r in batch)
    starts = PatchStarts(patcher, len(batch), torch.device("cpu"))
    with torch.inference_mode():
        for t in range(n):
            got_B = starts.step(torch.tensor([r[t] for r in batch]), t)
            for b, r in enumerate(batch):
                oracle = starts_of(split_first_patch(row_lengths(patcher, torch.tensor(r[: t + 1]))[None])[0])
                assert bool(got_B[b]) == ((t + 1) in oracle), (name, r[: t + 1])


def test_strided_and_entropy_restart_after_eos_in_the_prompt(registry, entropy_files):
    """Strided counts from the new document; the entropy patcher patches it exactly as alone."""
    strided = get_patcher(registry, "strided", entropy_files)  # patch_size 3
    ids = as_ids(list(b"abc") + [-2] + list(b"wxyz"))  # BOS a b c EOS | w x y z
    assert starts_of(row_lengths(strided, torch.tensor(ids))) == [0, 3, 5, 8]  # not 0, 3, 6, 9
    entropy = get_patcher(registry, "entropy", entropy_files)
    second = as_ids(list(b"ab cd. 1"))[1:]
    ids = as_ids(list(b"a.b") + [-2]) + second
    stepper = PatchStarts(entropy, 1, torch.device("cpu"))
    with torch.inference_mode():
        got = [int(t) + 1 for t in range(len(ids)) if bool(stepper.step(torch.tensor([ids[t]]), t))]
    alone = starts_of(entropy.patch(torch.tensor(second), include_next_token=True).lengths)
    offset = len(ids) - len(second)
    assert [p - offset for p in got if p >= offset] == alone
