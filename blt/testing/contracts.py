"""The patcher contract suite, as property checks run with hypothesis.

Each contract searches (``hypothesis.find``) for an input that violates it and, if it finds one,
reports the shrunk counterexample. ``check_patcher`` runs them all and raises ``AssertionError``;
``run_contracts`` returns one :class:`ContractResult` per contract (for tables, e.g. ``blt
check-plugin``). The incremental contract cuts both ways: a patcher declaring
``incremental=False`` must yield a counterexample (:func:`find_incremental_counterexample`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from hypothesis import strategies as st

from blt.testing import strategies as bst
from blt.testing.incremental import IncrementalCounterexample, incremental_violation, nonzero_lengths, show_tokens
from blt.testing.results import ContractResult, raise_failures
from blt.testing.search import search, single_threaded
from blt.testing.subject import Subject, resolve_subject
from blt.tokens import encode

Violation = Callable[[Subject, Any], "str | None"]


def split_reference(lengths: list[int], m: int) -> list[int]:
    """The max_patch_length oracle: each length > m becomes m, m, ..., rest (split left to right)."""
    out: list[int] = []
    for length in lengths:
        while length > m:
            out.append(m)
            length -= m
        if length:
            out.append(length)
    return out


# --- individual properties: each returns None or a description of the violation -------------

def violation_shape_and_sums(subject: Subject, example: tuple[torch.Tensor, bool]) -> str | None:
    """Rows sum to N (N + 1 with include_next_token); ``[B, P]`` long, ``[P]`` for a 1-D input."""
    batch, nxt = example[0].clone(), example[1]
    want = batch.shape[1] + int(nxt)
    for tokens, dim in ((batch, 2), (batch[0], 1)):
        lengths = subject.patcher.patch(tokens, include_next_token=nxt).lengths
        if lengths.dtype != torch.long or lengths.dim() != dim:
            return f"lengths must be a LongTensor of rank {dim}, got {lengths.dtype} of shape {list(lengths.shape)}"
    sums = subject.patcher.patch(batch, include_next_token=nxt).lengths.sum(-1).tolist()
    if any(s != want for s in sums):
        return f"row sums {sums}, expected {want} each (include_next_token={nxt})"
    return None


def violation_layout(subject: Subject, example: tuple[torch.Tensor, bool]) -> str | None:
    """Each row: lengths >= 1, then only zeros; P is the largest patch count (no all-zero column)."""
    batch, nxt = example[0].clone(), example[1]
    lengths = subject.patcher.patch(batch, include_next_token=nxt).lengths
    for row in lengths.tolist():
        count = sum(1 for x in row if x)
        if any(x < 0 for x in row) or any(x == 0 for x in row[:count]) or any(row[count:]):
            return f"row {row} is not 'lengths >= 1 then only zeros'"
    if lengths.shape[1] and not bool((lengths[:, -1] > 0).any()):
        return f"trailing all-zero column in {lengths.tolist()}; P must be the largest patch count"
    return None


def violation_max_patch_length(subject: Subject, example: tuple[torch.Tensor, bool, int]) -> str | None:
    """With ``max_patch_length=m`` every patch is the base patch split left to right: m, m, ..., rest."""
    batch, nxt, m = example[0].clone(), example[1], example[2]
    variant = subject.variant(max_patch_length=m)
    if variant is None:
        return None
    base = subject.base_for_max_length().patch(batch, include_next_token=nxt).lengths
    got = variant.patch(batch, include_next_token=nxt).lengths
    for b in range(batch.shape[0]):
        want = split_reference(nonzero_lengths(base[b]), m)
        if nonzero_lengths(got[b]) != want:
            return f"max_patch_length={m}: row {b} gave {nonzero_lengths(got[b])}, expected {want} (base {nonzero_lengths(base[b])})"
    return None


def violation_batch_consistency(subject: Subject, example: tuple[torch.Tensor, bool]) -> str | None:
    """A row patches the same alone (``[N]`` and ``[1, N]``) as inside the batch."""
    batch, nxt = example[0].clone(), example[1]
    together = subject.patcher.patch(batch, include_next_token=nxt).lengths
    for b in range(batch.shape[0]):
        alone = nonzero_lengths(subject.patcher.patch(batch[b], include_next_token=nxt).lengths)
        single = nonzero_lengths(subject.patcher.patch(batch[b : b + 1], include_next_token=nxt).lengths[0])
        if not (alone == single == nonzero_lengths(together[b])):
            return f"row {b}: in batch {nonzero_lengths(together[b])}, alone [N] {alone}, alone [1, N] {single}"
    return None


def _starts_below(lengths: list[int], limit: int) -> list[int]:
    """Start positions ``< limit`` of a row's non-zero patches."""
    starts, pos = [], 0
    for length in lengths:
        if length and pos < limit:
            starts.append(pos)
        pos += length
    return starts


def violation_include_next_token(subject: Subject, example: tuple[torch.Tensor]) -> str | None:
    """``include_next_token`` only adds position N: boundaries at positions < N are the same in
    both modes (a patcher that looks ahead only when asked for the next token breaks this)."""
    batch = example[0].clone()
    n = batch.shape[1]
    without = subject.patcher.patch(batch, include_next_token=False).lengths
    with_next = subject.patcher.patch(batch.clone(), include_next_token=True).lengths
    for b in range(batch.shape[0]):
        a, c = _starts_below(without[b].tolist(), n), _starts_below(with_next[b].tolist(), n)
        if a != c:
            return (f"row {b}: patch starts below N={n} are {a} without include_next_token but {c} with it "
                    f"(lengths {nonzero_lengths(without[b])} vs {nonzero_lengths(with_next[b])})")
    return None


def violation_deterministic(subject: Subject, example: tuple[torch.Tensor, bool]) -> str | None:
    """Same input, same output; the input tensor is not modified."""
    batch, nxt = example[0].clone(), example[1]
    before = batch.clone()
    first = subject.patcher.patch(batch, include_next_token=nxt).lengths
    second = subject.patcher.patch(batch.clone(), include_next_token=nxt).lengths
    if not torch.equal(batch, before):
        return "patch() modified its input tensor"
    if not torch.equal(first, second):
        return f"two calls gave {first.tolist()} and {second.tolist()}"
    return None


# --- strategies per contract -----------------------------------------------------------------

def _batches(subject: Subject) -> st.SearchStrategy:
    return bst.token_batches()


def _rows(subject: Subject) -> st.SearchStrategy:
    return st.one_of(bst.token_rows(), bst.token_rows(text=bst.english_texts()), bst.token_rows(text=bst.utf8_texts()))


CONTRACTS: dict[str, tuple[str, Violation, Callable[[Subject], st.SearchStrategy]]] = {
    "row_sums": ("rows sum to N (N + 1 with include_next_token); [B, P] / [P] LongTensor",
                 violation_shape_and_sums, lambda s: st.tuples(_batches(s), st.booleans())),
    "layout": ("lengths >= 1 then only zeros; P = largest patch count",
               violation_layout, lambda s: st.tuples(_batches(s), st.booleans())),
    "max_patch_length": ("max_patch_length=m splits each patch into m, m, ..., rest",
                         violation_max_patch_length, lambda s: st.tuples(_batches(s), st.booleans(), st.integers(1, 5))),
    "batch_consistency": ("a row patches the same alone as inside a batch",
                          violation_batch_consistency, lambda s: st.tuples(_batches(s), st.booleans())),
    "deterministic": ("same input, same output; input untouched",
                      violation_deterministic, lambda s: st.tuples(_batches(s), st.booleans())),
    "include_next_token": ("include_next_token=True only adds position N: boundaries below N as without it",
                           violation_include_next_token, lambda s: st.tuples(_batches(s))),
}


def _search(subject: Subject, violation: Violation, strategy: st.SearchStrategy, max_examples: int) -> tuple[Any, str] | None:
    """Shrunk (example, message) violating the property, or None if none was found."""
    return search(lambda example: violation(subject, example), strategy, max_examples)


def find_incremental_counterexample(target: Any, *, registry: Any = None, config: Any = None, max_examples: int = 200,
                                    include_next_token: bool | None = None) -> IncrementalCounterexample | None:
    """A shrunk input showing the patcher is not prefix-stable, or None if none was found.

    ``include_next_token``: search only that mode (None: both)."""
    subject = resolve_subject(target, registry=registry, config=config)
    found = _incremental_found(subject, max_examples, (False, True) if include_next_token is None else (include_next_token,))
    if isinstance(found, str):
        raise AssertionError(found)
    return found


def _incremental_found(subject: Subject, budget: int, modes: tuple[bool, ...] = (False, True)) -> IncrementalCounterexample | str | None:
    """The shrunk counterexample, a crash message, or None."""
    found = _search(subject, lambda s, row: None if incremental_violation(s.patcher, row, modes) is None else "x",
                    _rows(subject), budget)
    if found is None:
        return None
    try:
        return incremental_violation(subject.patcher, found[0], modes)
    except Exception as exc:
        return f"raised {type(exc).__name__}: {exc}; input: {show_tokens(found[0])}"


def _check_incremental(subject: Subject, max_examples: int) -> ContractResult:
    declared = subject.declared_incremental
    if subject.spec_incremental is not None and subject.spec_incremental != declared:
        return ContractResult("incremental", False, f"spec declares incremental={subject.spec_incremental} "
                              f"but the patcher's .incremental is {declared}")
    budget = max_examples if declared else max(max_examples, 200)
    # A non-incremental patcher: prefer an example without include_next_token (a real re-split).
    example = None if declared else _incremental_found(subject, budget, (False,))
    example = example or _incremental_found(subject, budget)
    if isinstance(example, str):
        return ContractResult("incremental", False, example)
    if declared and example is not None:
        return ContractResult("incremental", False, f"declares incremental=True, but {example}", example)
    if declared:
        return ContractResult("incremental", True, "prefix-stable, as declared")
    if example is None:
        return ContractResult("incremental", False, f"declares incremental=False, but no counterexample in {budget} "
                              "examples; declare incremental=True if patching is prefix-stable")
    return ContractResult("incremental", True, f"not prefix-stable, as declared: {example}", example)


def preflight(subject: Subject) -> None:
    """Patch one short document outside hypothesis, so a missing model or file surfaces as its own
    ``BltError`` (an environment problem) rather than as a contract violation."""
    subject.patcher.patch(encode("preflight"))


@single_threaded
def run_contracts(target: Any, *, registry: Any = None, config: Any = None, max_examples: int = 50,
                  only: Iterable[str] | None = None) -> list[ContractResult]:
    """Run every contract on a patcher, a ``PatcherSpec`` or a registered kind (built from
    ``config`` or its default config). A ``BltError`` from building or from one preflight patch
    (e.g. an entropy kind whose model file is missing) propagates unchanged. ``only``: run just
    these contracts (names of ``CONTRACTS`` and ``"incremental"``)."""
    subject = resolve_subject(target, registry=registry, config=config)
    preflight(subject)
    names = set(CONTRACTS) | {"incremental"} if only is None else set(only)
    unknown = names - set(CONTRACTS) - {"incremental"}
    if unknown:
        raise ValueError(f"unknown contract(s) {sorted(unknown)}; known: {', '.join([*CONTRACTS, 'incremental'])}")
    results: list[ContractResult] = []
    for name, (summary, violation, strategy) in CONTRACTS.items():
        if name not in names:
            continue
        if name == "max_patch_length" and subject.variant(max_patch_length=1) is None:
            results.append(ContractResult.skip(name, "no config to build a max_patch_length variant from"))
            continue
        found = _search(subject, violation, strategy(subject), max_examples)
        if found is None:
            results.append(ContractResult(name, True, summary))
        else:
            example, message = found
            mode = f", include_next_token={example[1]}" if len(example) > 1 else ""
            results.append(ContractResult(name, False, f"{message}; input: {show_tokens(example[0])}{mode}", example))
    if "incremental" in names:
        results.append(_check_incremental(subject, max_examples))
    return results


def check_patcher(target: Any, *, registry: Any = None, config: Any = None, max_examples: int = 50) -> list[ContractResult]:
    """Run every contract; raise ``AssertionError`` listing each failure with its shrunk counterexample."""
    subject = resolve_subject(target, registry=registry, config=config)
    return raise_failures("patcher", subject.name, run_contracts(subject, max_examples=max_examples))
