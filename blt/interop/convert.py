"""Map the port's state dict onto blt's model and entropy patcher, then load it strictly.

Key mapping: ``model.local_encoder.*`` -> ``encoder.*``,
``model.encoder_hash_tok_embedding.weight`` -> ``encoder.hash_embeddings.weight`` (same fused
``[T*V, d]`` layout, function-outer order), ``model.global_transformer.*`` -> ``global_transformer.*``,
``model.local_decoder.*`` -> ``decoder.*``, ``lm_head.weight`` -> ``lm_head.weight``, and
``model.patcher.*`` -> the transformer entropy model (``embed_tokens``, ``layers.{i}``, ``norm``,
``lm_head``). No q/k permutation: both use interleaved-pair RoPE.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from blt.core.errors import BltError
from blt.interop.hf_config import HFBlt, InteropError, entropy_model_config, experiment_from_hf, read_hf_config

_PREFIXES = (
    ("model.encoder_hash_tok_embedding.", "encoder.hash_embeddings."),
    ("model.local_encoder.", "encoder."),
    ("model.global_transformer.", "global_transformer."),
    ("model.local_decoder.", "decoder."),
    ("lm_head.", "lm_head."),
)
_PATCHER = "model.patcher."
_CROSS_KV = (".k_proj.weight", ".v_proj.weight")


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
        if key.startswith(_PATCHER):
            patcher_sd[key[len(_PATCHER):]] = tensor
            continue
        for old, new in _PREFIXES:
            if key.startswith(old):
                name = new + key[len(old):]
                break
        else:
            if key.endswith(("rotary_emb.inv_freq", "rotary_emb.original_inv_freq")):
                continue  # non-persistent buffers, recomputed from θ
            raise InteropError(f"unexpected tensor {key} in the checkpoint (not part of a BltForCausalLM)")
        if ".cross_attn_layers." in name and name.endswith(_CROSS_KV):
            stack = hf.encoder if name.startswith("encoder.") else hf.decoder
            tensor = _expand_kv(tensor, stack.heads, stack.kv_heads, key)
        if name == "encoder.hash_embeddings.weight" and tensor.shape[0] == 0:
            continue  # no hash tables: blt then has no hash embedding module
        model_sd[name] = tensor
    if "lm_head.weight" not in model_sd and hf.tie_word_embeddings and "encoder.embed_tokens.weight" in model_sd:
        model_sd["lm_head.weight"] = model_sd["encoder.embed_tokens.weight"]
    return model_sd, patcher_sd


def _blt_to_hf_name(name: str, patcher: bool) -> str:
    if patcher:
        return _PATCHER + name
    for old, new in _PREFIXES:
        if name.startswith(new):
            return old + name[len(new):]
    return name


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




def convert(config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor], *, registry: Any = None,
            attention: str = "sdpa") -> tuple[torch.nn.Module, Any]:
    """Build blt's ``(model, patcher)`` from a port config dict and its (HF-named) tensors."""
    from blt.core.registry import make_registry
    from blt.entropy.transformer import TransformerEntropyConfig, TransformerEntropyModel
    from blt.experiment import build_model

    hf = read_hf_config(config, {k: tuple(v.shape) for k, v in tensors.items()})
    registry = registry if registry is not None else make_registry(autoload=False)
    experiment = experiment_from_hf(hf, attention)
    # The port's local attention (and its entropy model) attend across an EOS inside a row.
    for section in ("encoder", "decoder"):
        experiment[section]["block_documents"] = False
    if hf.entropy_patching:
        patcher_cfg: dict[str, Any] = {"kind": "entropy", "threshold": hf.threshold}
    else:
        patcher_cfg = {"kind": "byte"}  # what the port does without an entropy patcher: one byte per patch
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
    fields = {**entropy_model_config(hf), "block_documents": False}
    entropy_model = TransformerEntropyModel(TransformerEntropyConfig(**fields))
    load_strict(entropy_model, patcher_sd, patcher=True)
    # Hand the converted entropy model to the patcher instead of a model file.
    patcher_config = registry.config("patchers", patcher_cfg, path="$.patcher")
    patcher = registry.patchers["entropy"].build(patcher_config, model=entropy_model.eval())
    return model, patcher
