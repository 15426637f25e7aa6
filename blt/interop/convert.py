"""Map the port's state dict onto blt's model and entropy patcher, then load it strictly.

Key mapping: ``model.local_encoder.*`` -> ``encoder.*``,
``model.encoder_hash_tok_embedding.weight`` -> ``encoder.hash_embeddings.weight`` (same fused
``[T*V, d]`` layout, function-outer order), ``model.global_transformer.*`` -> ``global_transformer.*``,
``model.local_decoder.*`` -> ``decoder.*``, ``lm_head.weight`` -> ``lm_head.weight``, and
``model.patcher.*`` -> the transformer entropy model (``embed_tokens``, ``layers.{i}``, ``norm``,
``lm_head``). No q/k permutation: both use interleaved-pair RoPE. The exporter
(:mod:`blt.interop.export`) reads the same table the other way (:func:`hf_name`).

The patcher: the port's entropy patcher when it patches in ``forward``; else the patcher recorded
under ``blt_patcher`` in ``config.json`` (written by blt's exporter for a patcher the port lacks,
e.g. ``strided``), else ``byte`` (one byte per patch, the port's own fallback).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
import torch

from blt.core.errors import BltError
from blt.interop.hf_config import (
    PORT_ENTROPY_PATCHER, PORT_FALLBACK_PATCHER, HFBlt, InteropError, entropy_model_config, experiment_from_hf, read_hf_config,
)

# (port prefix, blt prefix): the one name table of import and export.
PREFIXES = (
    ("model.encoder_hash_tok_embedding.", "encoder.hash_embeddings."),
    ("model.local_encoder.", "encoder."),
    ("model.global_transformer.", "global_transformer."),
    ("model.local_decoder.", "decoder."),
    ("lm_head.", "lm_head."),
)
PATCHER_PREFIX = "model.patcher."
BLT_PATCHER = "blt_patcher"  # config.json key: the blt patcher of an exported model the port cannot run
CROSS_KV = (".k_proj.weight", ".v_proj.weight")


def _expand_kv(weight: torch.Tensor, heads: int, kv_heads: int, key: str) -> torch.Tensor:
    """GQA cross-attention k/v ``[kv*hd, d]`` -> per-head ``[h*hd, d]`` (head h reads kv head h // (h/kv))."""
    if kv_heads == heads:
        return weight
    rows, d = weight.shape
    if rows % kv_heads:
        raise InteropError(f"tensor {key} has shape {list(weight.shape)}, not a multiple of {kv_heads} kv heads")
    hd = rows // kv_heads
    return weight.view(kv_heads, hd, d).repeat_interleave(heads // kv_heads, dim=0).reshape(heads * hd, d)


def map_state(hf: HFBlt, tensors: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(model state dict, entropy model state dict)`` in blt names; unknown keys raise."""
    model_sd: dict[str, torch.Tensor] = {}
    patcher_sd: dict[str, torch.Tensor] = {}
    for key, tensor in tensors.items():
        if key.startswith(PATCHER_PREFIX):
            patcher_sd[key[len(PATCHER_PREFIX):]] = tensor
            continue
        for old, new in PREFIXES:
            if key.startswith(old):
                name = new + key[len(old):]
                break
        else:
            if key.endswith(("rotary_emb.inv_freq", "rotary_emb.original_inv_freq")):
                continue  # non-persistent buffers, recomputed from θ
            raise InteropError(f"unexpected tensor {key} in the checkpoint (not part of a BltForCausalLM)")
        if ".cross_attn_layers." in name and name.endswith(CROSS_KV):
            stack = hf.encoder if name.startswith("encoder.") else hf.decoder
            tensor = _expand_kv(tensor, stack.heads, stack.kv_heads, key)
        if name == "encoder.hash_embeddings.weight" and tensor.shape[0] == 0:
            continue  # no hash tables: blt then has no hash embedding module
        model_sd[name] = tensor
    if "lm_head.weight" not in model_sd and hf.tie_word_embeddings and "encoder.embed_tokens.weight" in model_sd:
        model_sd["lm_head.weight"] = model_sd["encoder.embed_tokens.weight"]
    return model_sd, patcher_sd


def hf_name(name: str, patcher: bool = False) -> str | None:
    """The port's name of blt tensor ``name`` (of the entropy model with ``patcher``); None if unmapped."""
    if patcher:
        return PATCHER_PREFIX + name
    for old, new in PREFIXES:
        if name.startswith(new):
            return old + name[len(new):]
    return None


def _blt_to_hf_name(name: str, patcher: bool) -> str:
    return hf_name(name, patcher) or name


def load_strict(module: torch.nn.Module, state: Mapping[str, torch.Tensor], *, patcher: bool = False) -> None:
    """``load_state_dict(strict=True)`` with one-line errors naming the HF tensor and both shapes."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing:
        raise InteropError(f"checkpoint lacks tensor {_blt_to_hf_name(missing[0], patcher)}"
                           + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "") + " that the config implies")
    if extra:
        raise InteropError(f"checkpoint tensor {_blt_to_hf_name(extra[0], patcher)} does not fit the config"
                           + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
                           + " (its layer counts or cross_attn_all_layers disagree with the tensors)")
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise InteropError(f"tensor {_blt_to_hf_name(name, patcher)} has shape {list(tensor.shape)} "
                               f"but the config implies {list(expected[name].shape)}")
    module.load_state_dict({k: v.detach().to(torch.float32) for k, v in state.items()}, strict=True)


def _recorded_patcher(config: Mapping[str, Any], registry: Any) -> dict[str, Any]:
    """The ``blt_patcher`` table of ``config.json`` if there is one, else the port's ``byte`` fallback."""
    recorded = config.get(BLT_PATCHER)
    if recorded is None:
        return {"kind": PORT_FALLBACK_PATCHER}  # what the port does without an entropy patcher: one byte per patch
    try:
        return dict(msgspec.to_builtins(registry.config("patchers", recorded, path=f"$.{BLT_PATCHER}")))
    except (BltError, TypeError, ValueError) as exc:
        raise InteropError(f"config.json {BLT_PATCHER} is not a patcher this blt can build: {exc}") from None


def convert(config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor], *, registry: Any = None,
            attention: str = "sdpa") -> tuple[torch.nn.Module, Any]:
    """Build blt's ``(model, patcher)`` from a port config dict and its (HF-named) tensors."""
    from blt.core.registry import make_registry
    from blt.entropy.transformer import TransformerEntropyConfig, TransformerEntropyModel
    from blt.experiment import build_model

    hf = read_hf_config(config, {k: tuple(v.shape) for k, v in tensors.items()})
    registry = registry if registry is not None else make_registry(autoload=False)
    experiment = experiment_from_hf(hf, attention)
    if hf.entropy_patching:
        patcher_cfg: dict[str, Any] = {"kind": PORT_ENTROPY_PATCHER, "threshold": hf.threshold}
    else:
        patcher_cfg = _recorded_patcher(config, registry)
    if hf.max_patch_length is not None:
        patcher_cfg["max_patch_length"] = hf.max_patch_length
    experiment["patcher"] = patcher_cfg
    try:
        model = build_model(experiment, registry)
    except BltError as exc:
        raise InteropError(f"cannot build a blt model for this checkpoint: {exc}") from None
    model_sd, patcher_sd = map_state(hf, tensors)
    load_strict(model, model_sd)
    model.eval()
    if not hf.entropy_patching:
        return model, registry.build_patcher(patcher_cfg)
    entropy_model = TransformerEntropyModel(TransformerEntropyConfig(**entropy_model_config(hf)))
    load_strict(entropy_model, patcher_sd, patcher=True)
    # Hand the converted entropy model to the patcher instead of a model file.
    patcher_config = registry.config("patchers", patcher_cfg, path="$.patcher")
    patcher = registry.patchers[PORT_ENTROPY_PATCHER].build(patcher_config, model=entropy_model.eval())
    return model, patcher
