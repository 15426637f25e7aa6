"""Ablations: a base experiment, named variants, seeds and grids, trained to matched compute.

:mod:`.spec` resolves an ablation file to its runs, :mod:`.runner` trains and evaluates them
(:mod:`.workers`: in worker processes), :mod:`.stats` holds the statistics, :mod:`.results` and
:mod:`.plots` the summaries. Nothing heavy is imported here.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {"AblationError": "runner", "run_ablation": "runner", "default_jobs": "runner",
            "resolve_ablation": "spec", "default_ablation_path": "spec", "parse_seeds": "spec",
            "write_results": "results", "summarize": "results"}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"blt.ablation.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'blt.ablation' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
