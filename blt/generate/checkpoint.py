"""Load what generation needs from a checkpoint directory: model, patcher and context.

Accepted layouts (``path`` may also name the ``model.safetensors`` file itself):

- a run of ``blt train``: the run directory, its ``export/`` directory (``config.json`` +
  ``model.safetensors``) or a training checkpoint, loaded by :func:`blt.train.weights.load_trained`;
- a Hugging Face BLT checkpoint (``config.json`` with ``"model_type": "blt"`` + safetensors),
  converted by :func:`blt.interop.load_hf_checkpoint`.

The context is the experiment's ``data.seq_len`` (HF: ``max_position_embeddings``). An entropy
patcher's model is loaded here, so a checkpoint whose entropy model is missing fails up front; a
relative ``model_path`` is looked up next to the checkpoint when it is not found from the
working directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import msgspec
import torch

from blt.core.errors import BltError, InputError, UnavailableError

CONFIG = "config.json"


@attrs.frozen(eq=False)
class LoadedModel:
    model: torch.nn.Module
    patcher: Any
    context: int | None
    source: Path
    config: Any = None  # the experiment of a blt run; None for a Hugging Face checkpoint


def load(path: str | Path, *, device: str | torch.device | None = None) -> tuple[torch.nn.Module, Any]:
    """``blt.load(path) -> (model, patcher)``: a run directory, its export, a training checkpoint or a
    Hugging Face BLT checkpoint directory; the model in eval mode, the patcher it was trained with."""
    loaded = load_generator(path, device=device)
    return loaded.model, loaded.patcher


def load_generator(path: str | Path, *, device: str | torch.device | None = None) -> LoadedModel:
    """Model (eval mode), patcher and context of the checkpoint at ``path``."""
    p = Path(path)
    if p.is_file() and p.suffix == ".safetensors":
        p = p.parent
    hf_config = _hf_config(p)
    loaded = _load_hf(p, hf_config) if hf_config is not None else _load_trained(p)
    if device is not None:
        loaded.model.to(device)
    return loaded


def _hf_config(root: Path) -> dict[str, Any] | None:
    """The ``config.json`` of a Hugging Face checkpoint (it has ``model_type``), else None."""
    try:
        data = json.loads((root / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) and "model_type" in data else None


def _load_trained(root: Path) -> LoadedModel:
    from blt.train.weights import load_trained

    if not root.exists():
        raise InputError(f"checkpoint not found: {root}")
    config, registry, _, model = load_trained(root)  # run dir, export dir or training checkpoint
    patcher = registry.build_patcher(_resolve_model_path(config.patcher, root))
    _check_entropy_model(patcher, registry.spec("patchers", config.patcher.kind), root)
    return LoadedModel(model.eval(), patcher, int(config.data.seq_len), root, config)


def _resolve_model_path(patcher_config: Any, root: Path) -> Any:
    model_path = getattr(patcher_config, "model_path", None)
    if model_path and not Path(model_path).is_absolute() and not Path(model_path).exists() and (root / model_path).exists():
        return msgspec.structs.replace(patcher_config, model_path=str(root / model_path))
    return patcher_config


def _check_entropy_model(patcher: Any, spec: Any, root: Path) -> None:
    if not getattr(spec, "needs_model", False):
        return
    try:
        patcher.model  # noqa: B018 - loads it once
    except BltError as exc:
        raise InputError(f"checkpoint {root} uses the {spec.name!r} patcher, which needs an entropy model, "
                         f"and it could not be loaded: {exc}") from None


def _load_hf(root: Path, data: dict[str, Any]) -> LoadedModel:
    try:
        from blt.interop import load_hf_checkpoint
    except ImportError as exc:
        raise UnavailableError(f"{root} is a Hugging Face checkpoint, and blt.interop is not available here ({exc})") from None
    model, patcher = load_hf_checkpoint(root)
    context = data.get("max_position_embeddings")
    return LoadedModel(model.eval(), patcher, int(context) if isinstance(context, int) else None, root)
