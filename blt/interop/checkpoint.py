"""Read a saved port checkpoint directory (``config.json`` + safetensors) without transformers.

Accepted layouts (what ``save_pretrained`` writes): ``model.safetensors``, or shards listed in
``model.safetensors.index.json``. Pickled ``pytorch_model.bin`` files are refused (never unpickled).
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import torch

from blt.interop.hf_config import InteropError

CONFIG = "config.json"
SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"


def read_config(directory: pathlib.Path) -> dict[str, Any]:
    path = directory / CONFIG
    if not path.is_file():
        raise InteropError(f"{directory}: no {CONFIG} (not a saved Hugging Face model directory)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InteropError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise InteropError(f"{path}: expected a JSON object, got {type(config).__name__}")
    return config


def _weight_files(directory: pathlib.Path) -> list[pathlib.Path]:
    if (directory / SINGLE).is_file():
        return [directory / SINGLE]
    index_path = directory / INDEX
    if index_path.is_file():
        try:
            weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
            names = sorted(set(weight_map.values()))
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise InteropError(f"{index_path}: not a safetensors index ({exc.__class__.__name__}: {exc})") from None
        files = [directory / name for name in names]
        for f in files:
            if not f.is_file():
                raise InteropError(f"{index_path}: lists shard {f.name}, which is missing")
        return files
    if any(directory.glob("*.bin")) or any(directory.glob("*.pt")):
        raise InteropError(f"{directory}: only pickled weights found; blt reads safetensors only "
                           "(re-save with save_pretrained(..., safe_serialization=True))")
    raise InteropError(f"{directory}: no {SINGLE} or {INDEX}")


def read_tensors(directory: pathlib.Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    tensors: dict[str, torch.Tensor] = {}
    for path in _weight_files(directory):
        try:
            tensors.update(load_file(str(path)))
        except (SafetensorError, OSError, ValueError) as exc:
            raise InteropError(f"{path}: cannot read safetensors ({exc})") from None
    return tensors


def read_checkpoint(directory: str | pathlib.Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(config dict, HF-named tensors)`` of a saved directory; one-line InteropError otherwise."""
    directory = pathlib.Path(directory)
    if not directory.exists():
        raise InteropError(f"checkpoint directory not found: {directory}")
    if not directory.is_dir():
        raise InteropError(f"{directory}: not a directory (pass the folder that save_pretrained wrote)")
    config = read_config(directory)
    if config.get("model_type") != "blt":
        raise InteropError(f"{directory / CONFIG}: model_type is {config.get('model_type')!r}, expected 'blt' (a BltForCausalLM checkpoint)")
    return config, read_tensors(directory)
