"""Parallelism, applied from outside the model: the only module that imports ``torch.distributed``.

A run started by ``torchrun`` finds ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in its environment;
:func:`init` then starts a process group (``nccl`` on CUDA, ``gloo`` on CPU). Without those
variables everything here degrades to the single-process case, with no process group at all.

- :func:`wrap_model` applies DDP or FSDP2 (``fully_shard``) to a built model: FSDP2 shards each
  layer of every ``ModuleList`` (the encoder, global and decoder stacks), then the root. Both average gradients over ranks, so a rank's loss is scaled by the world size
  to make the update equal the single-process one (see the trainer).
- :func:`all_reduce_sum` sums metric values over ranks.
- :mod:`torch.distributed.checkpoint` is re-exported through :func:`dcp` and the state-dict
  helpers, which work with and without a process group.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import attrs
import torch
import torch.distributed as dist

from blt.core.errors import ConfigError


@attrs.frozen
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return dist.is_available() and dist.is_initialized()


def launched_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init(device: str = "auto") -> DistInfo:
    """Pick the device and, under torchrun with ``WORLD_SIZE > 1``, start the process group."""
    world = launched_world_size()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank if dev.index is None else dev.index)
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world=world, local_rank=local_rank, device=dev)


def shutdown(failed: bool | None = None) -> None:
    """Tear the process group down (call it from a ``finally``), so no rank exits with gloo's threads
    still running, which can abort at exit ("terminate called without an active exception").

    After a clean run the ranks first meet at a barrier, so none destroys the group while another
    still has traffic in flight. While an exception propagates (``failed``; by default read from
    :func:`sys.exc_info`) there is no barrier: the other ranks may be inside a collective this rank
    will never join, and would wait for it until the group's timeout (30 min under gloo). This rank
    destroys its side and exits; the peers' pending collectives then fail, and torchrun stops the run.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    if failed is None:
        failed = sys.exc_info()[0] is not None
    try:
        if not failed:
            dist.barrier()
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def resolve_mode(mode: str, world: int) -> str:
    if mode == "auto":
        return "ddp" if world > 1 else "none"
    if mode != "none" and world == 1:
        return "none"  # a single process needs no wrapper; the math is the same
    return mode


def wrap_model(model: torch.nn.Module, mode: str, info: DistInfo) -> torch.nn.Module:
    """Apply ``"none"``, ``"ddp"`` or ``"fsdp"`` (FSDP2) to ``model`` (already on ``info.device``)."""
    mode = resolve_mode(mode, info.world)
    if mode == "none":
        return model
    if not info.distributed:
        raise ConfigError(f"$.run.parallel: {mode!r} needs a process group; start the run with torchrun --nproc-per-node N")
    if mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[info.device.index] if info.device.type == "cuda" else None)
    if mode == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for module in model.modules():  # each layer of every stack (encoder, global, decoder, baselines)
            if isinstance(module, torch.nn.ModuleList):
                for layer in module:
                    if any(True for _ in layer.parameters()):
                        fully_shard(layer)
        fully_shard(model)  # the rest (embeddings, projections, head) as one unit
        return model
    raise ConfigError(f"$.run.parallel: unknown mode {mode!r}; expected auto, none, ddp or fsdp")


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The user's module under a DDP wrapper (FSDP2 shards in place, so it is the module itself)."""
    return getattr(model, "module", model) if type(model).__name__ == "DistributedDataParallel" else model


def all_reduce_sum(values: list[float], device: torch.device | None = None) -> list[float]:
    """Sum each value over ranks (float64); identity without a process group."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device or "cpu")
    dist.all_reduce(t)
    return t.tolist()


# --- distributed checkpoint helpers (DCP works without a process group in one process) ---

_METADATA_CLASSES = {
    ("torch.distributed.checkpoint.metadata", name) for name in (
        "Metadata", "TensorStorageMetadata", "BytesStorageMetadata", "ChunkStorageMetadata", "TensorProperties",
        "MetadataIndex", "StorageMeta", "_MEM_FORMAT_ENCODING")
} | {("torch.distributed.checkpoint.filesystem", "_StorageInfo"), ("torch.serialization", "_get_layout"),
     ("torch", "Size"), ("pathlib", "PosixPath"), ("pathlib", "WindowsPath"), ("pathlib", "PurePosixPath"),
     ("collections", "OrderedDict")}


def _safe_metadata_unpickler():
    import pickle

    class MetadataUnpickler(pickle.Unpickler):
        """DCP stores its index (``.metadata``) as a pickle; only DCP's own record types may load."""

        def find_class(self, module: str, name: str) -> Any:
            if (module, name) in _METADATA_CLASSES or (module == "torch" and isinstance(getattr(torch, name, None), torch.dtype)):
                return super().find_class(module, name)
            raise pickle.UnpicklingError(f"checkpoint metadata refers to {module}.{name}, which a checkpoint index never holds")

    return MetadataUnpickler


def dcp_save(state: dict, path: str) -> None:
    import torch.distributed.checkpoint as dcp_module

    dcp_module.save(state, checkpoint_id=path)


def dcp_load(state: dict, path: str) -> None:
    """Load into ``state`` in place. The index is read with an allow-list unpickler (never arbitrary
    classes); tensor data is read by DCP itself (raw storage, ``weights_only`` for any object)."""
    import torch.distributed.checkpoint as dcp_module
    from torch.distributed.checkpoint.filesystem import FileSystemReader
    from torch.distributed.checkpoint.metadata import StorageMeta

    unpickler = _safe_metadata_unpickler()

    class SafeReader(FileSystemReader):
        def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
            with self.fs.create_stream(self._get_metadata_path(kwargs.get("rank")), "rb") as fh:
                metadata = unpickler(fh).load()
            if getattr(metadata, "storage_meta", None) is None:
                metadata.storage_meta = StorageMeta()
            metadata.storage_meta.load_id = self.load_id
            return metadata

    dcp_module.load(state, storage_reader=SafeReader(path))


def get_train_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    from torch.distributed.checkpoint.state_dict import get_state_dict

    return get_state_dict(model, optimizer)


def set_train_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, model_sd: dict, optim_sd: dict) -> None:
    from torch.distributed.checkpoint.state_dict import set_state_dict

    set_state_dict(model, optimizer, model_state_dict=model_sd, optim_state_dict=optim_sd)


def full_model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole (unsharded) model state on CPU, on rank 0 (others get ``{}`` under FSDP)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


__all__ = ["DistInfo", "all_reduce_sum", "barrier", "init", "shutdown", "unwrap", "wrap_model"]
