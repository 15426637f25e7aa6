"""Shared test setup: hypothesis profiles (``dev`` locally, ``ci`` when $CI is set), GPU marker."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile("dev", deadline=None, max_examples=30, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "ci", deadline=None, max_examples=40, derandomize=True, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def registry():
    """The builtin registry with entry-point autoload off (tests build their own)."""
    import blt

    return blt.make_registry(autoload=False)


# Generation tests (test_generate*.py): one thread, and two tiny entropy models on disk.
@pytest.fixture(scope="module")
def one_thread():
    """Single-query steps are tiny: one thread avoids oversubscription on shared CPUs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def entropy_files(tmp_path_factory):
    from blt.entropy import CNNEntropyConfig, CNNEntropyModel, TransformerEntropyConfig, TransformerEntropyModel, save_entropy_model

    root = tmp_path_factory.mktemp("entropy")
    torch.manual_seed(7)
    transformer = TransformerEntropyModel(TransformerEntropyConfig(dim=16, layers=2, heads=2, ffn_dim=32, window=4))
    cnn = CNNEntropyModel(CNNEntropyConfig(dim=8, hidden=16, mlp_layers=2))
    with torch.no_grad():
        transformer.lm_head.weight.mul_(20)
        cnn.lm_head.weight.mul_(20)
    return {"entropy": save_entropy_model(transformer, root / "transformer.safetensors"),
            "cnn_entropy": save_entropy_model(cnn, root / "cnn.safetensors")}
