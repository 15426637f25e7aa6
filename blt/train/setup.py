"""Everything a run needs, built from one experiment config: patcher, data stores, model, costs.

Split from the loop so ``blt eval`` and ``blt ablate`` build the same objects the trainer does.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import msgspec
import torch

from blt import parallel
from blt.core.config import fingerprint
from blt.core.errors import ConfigError
from blt.data import open_store
from blt.data.store import Store

MODEL_SECTIONS = ("model", "encoder", "decoder", "patcher")
TRAJECTORY_FIELDS = {
    "data": ("source", "format", "text_field", "builtin_sources", "heldout", "max_documents", "seq_len", "batch_size", "seed"),
    "train": ("lr", "lr_min_ratio", "warmup", "weight_decay", "betas", "eps", "clip", "grad_accum", "seed", "dtype"),
}


def section_data(config: Any, name: str) -> Any:
    return msgspec.to_builtins(getattr(config, name, None))


def fingerprints(config: Any, steps: int) -> dict[str, str]:
    """``model``: what shapes the weights; ``trajectory``: what decides the training path."""
    model = {name: section_data(config, name) for name in MODEL_SECTIONS}
    traj = {sec: {f: section_data(config, sec)[f] for f in fields} for sec, fields in TRAJECTORY_FIELDS.items()}
    traj["steps"] = steps
    return {"model": fingerprint(model), "trajectory": fingerprint(traj)}


def config_fingerprint(config: Any) -> str:
    """Fingerprint of a resolved experiment: every section but ``[run]`` (the run environment),
    and not ``[data] cache_dir`` or ``workers`` (where a cache lives and how many processes build it
    do not change what is in it)."""
    data = msgspec.to_builtins(config)
    data.pop("run", None)
    for local in ("cache_dir", "workers"):  # where a cache lives and how many processes build it
        data.get("data", {}).pop(local, None)
    return fingerprint(data)


def build_network(config: Any, registry: Any, patcher: Any, *, device: Any = None, training: bool = False) -> torch.nn.Module:
    """The model an experiment trains, through its ``[model] kind`` plugin (on CPU)."""
    from blt.experiment import build_model

    return build_model(config, registry, patcher=patcher, device=device, training=training)


def param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@attrs.define
class RunPieces:
    config: Any
    registry: Any
    patcher: Any
    model: torch.nn.Module
    train_store: Store
    heldout_store: Store
    costs: Any  # blt.flops.FlopsReport


def open_stores(config: Any, patcher: Any, info: parallel.DistInfo) -> tuple[Store, Store]:
    """Rank 0 builds missing stores first; the other ranks then open them."""
    stores = None
    if info.is_main:
        stores = (open_store(config.data, "train", patcher, config.patcher), open_store(config.data, "heldout", patcher, config.patcher))
    parallel.barrier()
    if stores is None:
        stores = (open_store(config.data, "train", patcher, config.patcher), open_store(config.data, "heldout", patcher, config.patcher))
    return stores


def measure_avg_patch_size(store: Store, max_docs: int = 64) -> float:
    """Mean patch length in stream positions (exact when cached, else over its first ``max_docs`` docs)."""
    exact = store.avg_patch_size()
    if exact is not None:
        return exact
    n = min(store.n_docs, max_docs)
    tokens = sum(len(store.doc_tokens(i)) for i in range(n))
    patches = sum(len(store.doc_lengths(i)) for i in range(n))
    return tokens / max(patches, 1)


def measure_bytes_per_position(store: Store, max_docs: int = 64) -> float:
    """Text bytes per stream position over the store's first ``max_docs`` documents: 1 unless the
    patcher's prepared stream holds tokens that are not bytes (BPE delimiters)."""
    from blt.train.objective import target_byte_count

    n = min(store.n_docs, max_docs)
    docs = [torch.tensor(store.doc_tokens(i)) for i in range(n)]
    positions = sum(d.numel() for d in docs)
    return sum(target_byte_count(d) for d in docs) / positions if positions else 1.0


def build_pieces(config: Any, registry: Any, info: parallel.DistInfo, *, training: bool = True) -> RunPieces:
    """Patcher, stores, model and costs of a run. ``training``: refuse up front a backend that
    cannot run backward on this rank's device."""
    from blt import flops

    patcher = registry.build_patcher(config.patcher)
    train_store, heldout_store = open_stores(config, patcher, info)
    torch.manual_seed(config.train.seed)  # identical initial weights on every rank
    model = build_network(config, registry, patcher, training=training, device=info.device if training else None)
    costs = flops.report(config, model, patcher, avg_patch_size=measure_avg_patch_size(train_store),
                         bytes_per_position=measure_bytes_per_position(train_store))
    return RunPieces(config, registry, patcher, model, train_store, heldout_store, costs)


def bytes_per_step(config: Any) -> int:
    return config.data.seq_len * config.data.batch_size * config.train.grad_accum


def resolve_steps(config: Any, train_flops_per_position: float) -> int:
    """``[train] steps`` if set, else ``floor([budget] train_flops / training FLOPs per step)``.

    ``train_flops_per_position``: training FLOPs per row position (a step is ``seq_len`` positions
    per row)."""
    if config.train.steps is not None:
        return int(config.train.steps)
    budget = config.budget.train_flops
    if budget is None:
        raise ConfigError("$.train.steps: set [train] steps or [budget] train_flops to say how long to train")
    per_step = train_flops_per_position * bytes_per_step(config)
    steps = math.floor(budget / per_step)
    if steps < 1:
        raise ConfigError(f"$.budget.train_flops: {budget:.3g} FLOPs is less than one training step of this config "
                          f"({per_step:.3g} FLOPs for {bytes_per_step(config)} bytes); raise the budget or shrink the batch")
    return steps


__all__ = ["RunPieces", "build_pieces", "build_network", "fingerprints", "resolve_steps"]
