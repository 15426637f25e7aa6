"""Public test helpers for patcher authors: hypothesis strategies and the patcher contract suite.

``check_patcher(kind_or_spec_or_patcher)`` runs every patcher contract and raises
``AssertionError`` with a shrunk counterexample; ``run_contracts`` returns the results instead.
The same suite runs as ``blt check-plugin KIND`` and, with ``pytest --blt-contracts``, over every
registered patcher (``blt.testing.pytest_plugin``).
"""

from __future__ import annotations

from blt.testing import strategies
from blt.testing.contracts import (
    CONTRACTS,
    ContractResult,
    IncrementalCounterexample,
    check_patcher,
    find_incremental_counterexample,
    incremental_violation,
    run_contracts,
    show_tokens,
    split_reference,
)
from blt.testing.distributions import fake_distribution
from blt.testing.subject import Subject, resolve_subject

__all__ = [
    "CONTRACTS",
    "ContractResult",
    "IncrementalCounterexample",
    "Subject",
    "check_patcher",
    "fake_distribution",
    "find_incremental_counterexample",
    "incremental_violation",
    "resolve_subject",
    "run_contracts",
    "show_tokens",
    "split_reference",
    "strategies",
]
