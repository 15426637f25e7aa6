"""Save and load entropy models: safetensors weights + a JSON sidecar (kind, config, vocab, recipe).

``save_entropy_model(model, "m.safetensors")`` writes ``m.safetensors`` and ``m.json``. Loading never
unpickles anything and fails with one clear :class:`EntropyModelError` line for a missing or
corrupt file, a model for another vocabulary, or weights that do not fit the config.
"""

from __future__ import annotations

import importlib.resources
import json
import pathlib
from typing import Any

import msgspec
import torch

from blt.core.atomic import atomic_path, atomic_write_json
from blt.core.errors import InputError
from blt.entropy.cnn import CNNEntropyConfig, CNNEntropyModel
from blt.entropy.transformer import TransformerEntropyConfig, TransformerEntropyModel
from blt.tokens import VOCAB_SIZE

FORMAT = "blt-entropy-model"
FORMAT_VERSION = 1
MODEL_TYPES: dict[str, tuple[type, type]] = {
    "transformer": (TransformerEntropyConfig, TransformerEntropyModel),
    "cnn": (CNNEntropyConfig, CNNEntropyModel),
}
EntropyModelConfig = TransformerEntropyConfig | CNNEntropyConfig


class EntropyModelError(InputError):
    """An entropy model file is missing, damaged or does not fit (vocabulary, kind, shapes)."""


def build_entropy_model(config: EntropyModelConfig) -> torch.nn.Module:
    """A freshly initialised model for ``config`` (its type selects the kind)."""
    return _model_type(config)(config)


def _model_type(config: Any) -> type:
    for _, (cfg_type, model_type) in MODEL_TYPES.items():
        if isinstance(config, cfg_type):
            return model_type
    raise EntropyModelError(f"not an entropy model config: {type(config).__name__}; expected one of {', '.join(MODEL_TYPES)}")


def sidecar_path(weights_path: str | pathlib.Path) -> pathlib.Path:
    """``model.safetensors`` -> ``model.json``."""
    return pathlib.Path(weights_path).with_suffix(".json")


def shipped_model_path(kind: str) -> pathlib.Path:
    """The tiny model shipped with blt: ``kind`` is ``"transformer"`` or ``"cnn"``."""
    if kind not in MODEL_TYPES:
        raise EntropyModelError(f"no shipped entropy model of kind {kind!r}; kinds: {', '.join(MODEL_TYPES)}")
    return pathlib.Path(str(importlib.resources.files("blt") / "resources" / "entropy" / f"{kind}-tiny.safetensors"))


def save_entropy_model(model: torch.nn.Module, path: str | pathlib.Path, recipe: dict[str, Any] | None = None) -> pathlib.Path:
    """Write ``path`` (``.safetensors``) and its JSON sidecar; returns the weights path."""
    from safetensors.torch import save_file

    path = pathlib.Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:  # also gives the file ordinary permissions (safetensors writes it owner-only)
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "kind": model.kind})
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": model.kind,
        "vocab_size": VOCAB_SIZE,
        "config": msgspec.to_builtins(model.config),
        "recipe": recipe or {},
    }
    atomic_write_json(sidecar_path(path), meta, indent=2, sort_keys=True)
    return path


def read_model_meta(path: str | pathlib.Path) -> dict[str, Any]:
    """The JSON sidecar of a weights file, checked for format and vocabulary."""
    meta_path = sidecar_path(path)
    if not meta_path.is_file():
        raise EntropyModelError(f"entropy model config not found: {meta_path} (expected next to {pathlib.Path(path).name}; save with blt train-entropy)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EntropyModelError(f"{meta_path}: corrupt entropy model config ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise EntropyModelError(f"{meta_path}: not a blt entropy model config (missing \"format\": \"{FORMAT}\")")
    if meta.get("vocab_size") != VOCAB_SIZE:
        raise EntropyModelError(
            f"{meta_path}: model was trained for a vocabulary of {meta.get('vocab_size')}, blt byte tokens need {VOCAB_SIZE}; retrain with blt train-entropy"
        )
    if meta.get("kind") not in MODEL_TYPES:
        raise EntropyModelError(f"{meta_path}: unknown entropy model kind {meta.get('kind')!r}; kinds: {', '.join(MODEL_TYPES)}")
    return meta


def load_entropy_model(path: str | pathlib.Path, *, expect_kind: str | None = None) -> torch.nn.Module:
    """Load a model saved by :func:`save_entropy_model`, in eval mode on the CPU."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = pathlib.Path(path)
    if not path.is_file():
        raise EntropyModelError(f"entropy model file not found: {path} (train one with blt train-entropy, or leave model_path unset for the shipped model)")
    meta = read_model_meta(path)
    kind = meta["kind"]
    if expect_kind is not None and kind != expect_kind:
        raise EntropyModelError(f"{path}: is a {kind!r} entropy model, this patcher needs a {expect_kind!r} one")
    cfg_type, model_type = MODEL_TYPES[kind]
    try:
        config = msgspec.convert({**meta.get("config", {}), "kind": kind}, cfg_type)
    except msgspec.ValidationError as exc:
        raise EntropyModelError(f"{sidecar_path(path)}: bad model config: {exc}") from None
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise EntropyModelError(f"{path}: corrupt safetensors file ({exc}); re-save or retrain the model") from None
    model = model_type(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise EntropyModelError(f"{path}: weights do not match the config: missing {missing[:3]}, unexpected {extra[:3]}")
    for name, tensor in tensors.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise EntropyModelError(
                f"{path}: tensor {name} has shape {list(tensor.shape)}, the config needs {list(expected[name].shape)}"
                + (f" (vocabulary {tensor.shape[0]} instead of {VOCAB_SIZE})" if name in ("embed_tokens.weight", "lm_head.weight") else "")
            )
    model.load_state_dict(tensors)
    return model.eval()
