"""How the contract suites run: counterexample search with fixed settings, on one thread.

Settings: ``deadline=None`` (torch code), ``derandomize=True`` and no example database, so a suite
explores the same examples on every run and machine and never flakes. The models and tensors of
a suite are tiny; with several intra-op threads on a shared machine they run many times slower
(threads spin waiting for each other), so each suite runs on one thread (:func:`single_threaded`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch

from hypothesis import HealthCheck, find, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky, FlakyFailure, NoSuchExample


F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block with one torch intra-op thread, restoring the previous count afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def single_threaded(run: F) -> F:
    """Decorate a suite's entry point to run it under :func:`one_thread`."""
    @functools.wraps(run)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with one_thread():
            return run(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def contract_settings(max_examples: int) -> settings:
    return settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))


def search(describe: Callable[[Any], str | None], strategy: st.SearchStrategy, max_examples: int) -> tuple[Any, str] | None:
    """The shrunk ``(example, message)`` for which ``describe`` reports a violation, or None.

    A crash inside ``describe`` is a violation too (and gets shrunk); a property that answers the
    same input differently makes the search flaky, which is reported as such."""
    last: list[Any] = []

    def explain(example: Any) -> str | None:
        try:
            return describe(example)
        except Exception as exc:
            return f"raised {type(exc).__name__}: {exc}"

    def violated(example: Any) -> bool:
        found = explain(example) is not None
        if found:
            last[:] = [example]
        return found

    try:
        example = find(strategy, violated, settings=contract_settings(max_examples))
    except NoSuchExample:
        return None
    except (Flaky, FlakyFailure):
        return last[0], "flaky: the same input gave a violation once and not the next time (is it deterministic?)"
    return example, explain(example) or "violation did not reproduce (is it deterministic?)"


__all__ = ["contract_settings", "one_thread", "search", "single_threaded"]
