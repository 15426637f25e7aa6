"""Counterexample search shared by the contract suites: ``hypothesis.find`` with fixed settings.

Settings: ``deadline=None`` (torch code), ``derandomize=True`` and no example database, so a suite
explores the same examples on every run and machine and never flakes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, find, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky, FlakyFailure, NoSuchExample


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


__all__ = ["contract_settings", "search"]
