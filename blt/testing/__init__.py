"""Public test helpers for plugin authors: a contract suite for every family, hypothesis strategies.

Each family's suite returns one :class:`ContractResult` per contract (``run_*``) or raises
``AssertionError`` listing the failed ones with their shrunk counterexamples (``check_*``):

- patchers: ``check_patcher(kind_or_spec_or_patcher)`` / ``run_contracts`` (:mod:`blt.testing.contracts`);
- encoders / decoders: ``check_encoder(kind)`` / ``check_decoder(kind)`` inside a small BLT with
  builtin partners (:mod:`blt.testing.component_contracts`);
- attention backends: ``check_attention(kind)`` against ``eager`` (:mod:`blt.testing.attention_contracts`);
- models: ``check_model(kind)``, causal for every registered patcher (:mod:`blt.testing.model_contracts`);
- any family by name: ``check_family(family, kind)`` / ``run_family`` (:mod:`blt.testing.families`).

The same suites run as ``blt check-plugin [--family F] KIND`` and, with ``pytest --blt-contracts``,
over every registered component (``blt.testing.pytest_plugin``).
"""

from __future__ import annotations

from blt.testing import strategies
from blt.testing.attention_contracts import check_attention, run_attention_contracts
from blt.testing.component_contracts import check_decoder, check_encoder, run_decoder_contracts, run_encoder_contracts
from blt.testing.contracts import (
    CONTRACTS,
    IncrementalCounterexample,
    check_patcher,
    find_incremental_counterexample,
    incremental_violation,
    run_contracts,
    show_tokens,
    split_reference,
)
from blt.testing.distributions import fake_distribution
from blt.testing.families import FAMILIES, check_family, families_of, run_family
from blt.testing.model_contracts import check_model, run_model_contracts
from blt.testing.results import ContractResult
from blt.testing.subject import Subject, resolve_subject

__all__ = [
    "CONTRACTS",
    "FAMILIES",
    "ContractResult",
    "IncrementalCounterexample",
    "Subject",
    "check_attention",
    "check_decoder",
    "check_encoder",
    "check_family",
    "check_model",
    "check_patcher",
    "fake_distribution",
    "families_of",
    "find_incremental_counterexample",
    "incremental_violation",
    "resolve_subject",
    "run_attention_contracts",
    "run_contracts",
    "run_decoder_contracts",
    "run_encoder_contracts",
    "run_family",
    "run_model_contracts",
    "show_tokens",
    "split_reference",
    "strategies",
]
