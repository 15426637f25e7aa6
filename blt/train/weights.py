"""Exported weights (safetensors + config JSON) and loading a trained model for evaluation.

``export/model.safetensors`` holds the full (unsharded) weights, ``export/config.json`` the
experiment. Loading never unpickles: safetensors for exports, DCP into the live model's state dict
for training checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import torch

from blt import parallel
from blt.core.atomic import atomic_path, atomic_write_json
from blt.train.checkpoint import CheckpointError, latest, read_dcp

CONFIG = "config.json"
WEIGHTS = "model.safetensors"


def export_weights(model: torch.nn.Module, config: Any, out: Path) -> None:
    """``out/model.safetensors`` (full, unsharded weights) + ``out/config.json`` (the experiment).
    A collective under FSDP: every rank calls it; only the rank holding the full state writes."""
    from safetensors.torch import save_file

    state = parallel.full_model_state(model)
    if not state:
        return
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / WEIGHTS) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(tmp))
    atomic_write_json(out / CONFIG, msgspec.to_builtins(config))


def _read_config(path: Path) -> Any:
    from blt.experiment import load_experiment
    from blt.train.config import move_to_run

    if not path.is_file():
        raise CheckpointError(f"{path} is missing: cannot tell which model the checkpoint holds")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise CheckpointError(f"{path} is corrupt: {exc}") from None
    return load_experiment(move_to_run(data) if isinstance(data, dict) else data)


def locate(path: str | Path) -> tuple[str, Path, Path]:
    """``(kind, weights location, config file)`` for a run dir, an export dir or a checkpoint dir."""
    p = Path(path)
    if (p / WEIGHTS).is_file():
        return "safetensors", p / WEIGHTS, p / CONFIG
    if (p / "export" / WEIGHTS).is_file():
        return "safetensors", p / "export" / WEIGHTS, p / "export" / CONFIG
    if (p / "train_state.json").is_file():
        return "dcp", p, p.parent.parent / CONFIG
    if (p / "checkpoints").is_dir():
        found = latest(p / "checkpoints")
        if found is not None:
            return "dcp", found, p / CONFIG
    if not p.exists():
        raise CheckpointError(f"checkpoint path does not exist: {p}")
    raise CheckpointError(f"no checkpoint in {p}: expected a run directory (checkpoints/ or export/), an export "
                          f"directory ({WEIGHTS} + {CONFIG}) or a checkpoint directory (step_*)")


def load_trained(path: str | Path) -> tuple[Any, Any, Any, torch.nn.Module]:
    """``(config, registry, patcher, model)`` with trained weights, in eval mode, on CPU."""
    from blt.train.setup import build_network

    kind, where, config_file = locate(path)
    config, registry = _read_config(config_file)
    patcher = registry.build_patcher(config.patcher)
    model = build_network(config, registry, patcher)
    expected = model.state_dict()
    if kind == "safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(where))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{where} is corrupt: {exc}") from None
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        bad = [k for k in expected if k in state and state[k].shape != expected[k].shape]
        if missing or extra or bad:
            raise CheckpointError(f"{where} does not fit the model in {config_file.name} (missing {missing[:3]}, unexpected "
                                  f"{extra[:3]}, shape mismatch {bad[:3]}); it comes from an incompatible config")
        model.load_state_dict(state)
    else:
        target = {"model": dict(expected)}
        read_dcp(target, where, "its config")
        model.load_state_dict(target["model"])
    return config, registry, patcher, model.eval()


__all__ = ["export_weights", "load_trained", "locate"]
