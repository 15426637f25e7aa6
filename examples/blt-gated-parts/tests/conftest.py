"""Run from a source checkout too: put ``src/`` on the path when the package is not installed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

# Tiny models: one thread is fastest, and avoids oversubscribing shared CPUs.
torch.set_num_threads(1)

if importlib.util.find_spec("blt_gated_parts") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


@pytest.fixture(scope="session")
def registry():
    """blt's builtins plus this package's three plugin modules (entry-point autoload off, so an
    installed copy is not registered twice)."""
    import blt
    from blt_gated_parts import chunked, conv_pool, gated

    return blt.make_registry(autoload=False, plugins=[conv_pool, gated, chunked])
