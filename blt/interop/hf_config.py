"""Read a Hugging Face ``BltConfig`` (as a plain dict, e.g. ``config.json``) into blt's experiment config.

Every size comes from the config or, where the config leaves it unset, from the tensor shapes;
never from class defaults (the port's defaults have changed between transformers versions). Semantics that blt's model cannot express are
refused here with one :class:`InteropError` line naming the field, before any tensor is built.

How the port's semantics map:

- RoPE: both are interleaved-pair, so q/k rows are loaded as they are (no permutation).
- Local self-attention: the port builds one sliding-window mask from ``local_attention_window_len``
  and uses it in the encoder *and* the decoder (``q - kv < W``, as blt's ``window``); None = causal.
- Global transformer: plain causal over patches, so ``block_documents = False``.
- Encoder cross-attention: with ``cross_attn_all_layers`` the port re-pools the slots at every
  cross-attention layer (``repool = True``); the double residual is the same in both.
- Cross-attention heads: the port uses the local stack's head count (and kv head count, GQA);
  blt's cross-attention has no GQA, so kv projections are expanded per head on load (exact).
- The decoder's ``patch_embedding_projection`` exists in both even when ``d_global == d_local``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import attrs

from blt.core.errors import InputError

MODEL_TYPE = "blt"
# What the port is in blt's terms, in one table the importer writes and the exporter checks against:
# the model and its local stacks, its entropy patcher, and its fallback without one (a byte per patch).
PORT_KINDS = {"model": "blt", "encoder": "cross_attention", "decoder": "cross_attention"}
PORT_ENTROPY_PATCHER = "entropy"
PORT_FALLBACK_PATCHER = "byte"
VOCAB = 260
# Values transformers itself fills in when a key is absent from config.json (not sizes).
HF_LOCAL_THETA = 500000.0
HF_PATCHER_THETA = 10000.0
HF_WINDOW = 512
HF_EPS = 1e-5
# The port's patcher with sliding_window None attends over the whole causal context.
UNLIMITED_WINDOW = 2**31 - 1


class InteropError(InputError):
    """A Hugging Face BLT model or checkpoint cannot be read or converted (one clear line)."""


Shapes = Mapping[str, tuple[int, ...]]


def _sub(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    sub = config.get(name)
    if sub is None:
        sub = {}
    if hasattr(sub, "to_dict"):
        sub = sub.to_dict()
    if not isinstance(sub, Mapping):
        raise InteropError(f"config field {name} must be an object, got {type(sub).__name__}")
    return sub


def rope_theta(sub: Mapping[str, Any], default: float, where: str) -> float:
    """θ from ``rope_parameters.rope_theta`` or ``rope_theta``; refuses RoPE scaling blt lacks."""
    params = sub.get("rope_parameters") or sub.get("rope_scaling") or {}
    if not isinstance(params, Mapping):
        raise InteropError(f"{where}.rope_parameters must be an object, got {type(params).__name__}")
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type not in (None, "default"):
        raise InteropError(f"{where}: RoPE type {rope_type!r} is not supported (blt implements the default RoPE only)")
    theta = params.get("rope_theta", sub.get("rope_theta", default))
    if not isinstance(theta, (int, float)) or not math.isfinite(theta) or theta <= 0:
        raise InteropError(f"{where}.rope_theta must be a positive number, got {theta!r}")
    return float(theta)


def _count_layers(shapes: Shapes, prefix: str) -> int:
    pat = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    idx = {int(m.group(1)) for key in shapes if (m := pat.match(key))}
    return max(idx) + 1 if idx else 0


def _int(sub: Mapping[str, Any], key: str, where: str, fallback: int | None = None) -> int:
    value = sub.get(key)
    if value is None:
        value = fallback
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InteropError(f"{where}.{key} must be a positive integer, got {value!r}")
    return value


def _shape(shapes: Shapes, key: str, axis: int) -> int | None:
    shape = shapes.get(key)
    return shape[axis] if shape is not None and len(shape) > axis else None


@attrs.frozen
class StackDims:
    """One transformer stack of the port (encoder, decoder, global or patcher)."""

    width: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    theta: float
    eps: float


def read_stack(config: Mapping[str, Any], name: str, prefix: str, shapes: Shapes, default_theta: float) -> StackDims:
    """Sizes of ``config[name]``; unset sizes are read from the tensors under ``prefix``."""
    sub = _sub(config, name)
    width = _int(sub, "hidden_size", name, _shape(shapes, f"{prefix}.layers.0.input_layernorm.weight", 0))
    layers = _int(sub, "num_hidden_layers", name, _count_layers(shapes, f"{prefix}.layers") or None)
    if "num_attention_heads" not in sub:
        raise InteropError(f"config has no {name}.num_attention_heads (needed: head counts cannot be read from tensor shapes)")
    heads = _int(sub, "num_attention_heads", name)
    kv_heads = _int(sub, "num_key_value_heads", name, heads)
    ffn = _int(sub, "intermediate_size", name, _shape(shapes, f"{prefix}.layers.0.mlp.gate_proj.weight", 0))
    eps = sub.get("rms_norm_eps", HF_EPS)
    if not isinstance(eps, (int, float)) or not eps > 0:
        raise InteropError(f"{name}.rms_norm_eps must be a positive number, got {eps!r}")
    act = sub.get("hidden_act", "silu")
    if act not in ("silu", "swish"):
        raise InteropError(f"{name}.hidden_act is {act!r}; blt's MLP is SwiGLU (silu) only")
    if width % heads:
        raise InteropError(f"{name}: hidden_size {width} is not divisible by num_attention_heads {heads}")
    if (width // heads) % 2:
        raise InteropError(f"{name}: head size {width // heads} is odd; RoPE needs an even head size")
    if heads % kv_heads:
        raise InteropError(f"{name}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}")
    return StackDims(width, layers, heads, kv_heads, ffn, rope_theta(sub, default_theta, name), float(eps))


@attrs.frozen
class HFBlt:
    """Everything blt needs from a port config (plus its tensor shapes)."""

    encoder: StackDims
    decoder: StackDims
    global_: StackDims
    patcher: StackDims | None
    patcher_window: int
    k: int
    window: int | None
    hash_sizes: tuple[int, ...]
    hash_functions: int
    hash_buckets: int
    encoder_cross_all: bool
    decoder_cross_all: bool
    entropy_patching: bool        # the port patches by entropy in forward (else one byte per patch)
    threshold: float | None
    max_patch_length: int | None
    tie_word_embeddings: bool


def read_hf_config(config: Mapping[str, Any], shapes: Shapes) -> HFBlt:
    """Validate a port config dict against blt's model and the checkpoint's tensor shapes."""
    if not isinstance(config, Mapping):
        raise InteropError(f"a BLT config must be a JSON object, got {type(config).__name__}")
    model_type = config.get("model_type")
    if model_type != MODEL_TYPE:
        raise InteropError(f"config model_type is {model_type!r}, expected {MODEL_TYPE!r} (a transformers BltForCausalLM checkpoint)")
    vocab = config.get("vocab_size", VOCAB)
    if vocab != VOCAB:
        raise InteropError(f"config vocab_size is {vocab}, blt byte tokens need {VOCAB}")

    enc = read_stack(config, "encoder_config", "model.local_encoder", shapes, HF_LOCAL_THETA)
    dec = read_stack(config, "decoder_config", "model.local_decoder", shapes, HF_LOCAL_THETA)
    glob = read_stack(config, "global_config", "model.global_transformer", shapes, HF_LOCAL_THETA)
    if enc.width != dec.width:
        raise InteropError(
            f"encoder hidden_size {enc.width} differs from decoder hidden_size {dec.width}; blt has one local width "
            "(the port feeds the encoder's byte states to the decoder, so they must match)"
        )
    if not enc.theta == dec.theta == glob.theta:
        raise InteropError(
            f"RoPE theta differs between encoder ({enc.theta}), decoder ({dec.theta}) and global ({glob.theta}) stacks; "
            "blt uses one model.rope_theta for all three"
        )
    if not enc.eps == dec.eps == glob.eps:
        raise InteropError(
            f"rms_norm_eps differs between encoder ({enc.eps}), decoder ({dec.eps}) and global ({glob.eps}) stacks; "
            "blt uses one model.norm_eps"
        )

    k = _int(config, "cross_attn_k", "config", _k_from_shapes(shapes, enc.width))
    for name in ("encoder_config", "decoder_config"):
        sub_k = _sub(config, name).get("cross_attn_k")
        if sub_k is not None and sub_k != k:
            raise InteropError(f"{name}.cross_attn_k is {sub_k} but cross_attn_k is {k}; the port needs them equal")
    hidden_global = _sub(config, "decoder_config").get("hidden_size_global")
    if hidden_global is not None and hidden_global != glob.width:
        raise InteropError(f"decoder_config.hidden_size_global is {hidden_global} but global_config.hidden_size is {glob.width}")

    window = config.get("local_attention_window_len", HF_WINDOW)
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
        raise InteropError(f"local_attention_window_len must be a positive integer or null, got {window!r}")
    sizes = config.get("encoder_hash_byte_group_size") or [3, 4, 5, 6, 7, 8]
    if not isinstance(sizes, (list, tuple)) or not all(isinstance(g, int) and not isinstance(g, bool) and g >= 1 for g in sizes):
        raise InteropError(f"encoder_hash_byte_group_size must be a list of positive integers, got {sizes!r}")
    functions = config.get("encoder_hash_byte_group_nb_functions", 1)
    if isinstance(functions, bool) or not isinstance(functions, int) or functions < 0:
        raise InteropError(f"encoder_hash_byte_group_nb_functions must be a non-negative integer, got {functions!r}")
    buckets = _int(config, "encoder_hash_byte_group_vocab", "config",
                   _buckets_from_shapes(shapes, functions * len(sizes)))

    patch_in_forward = bool(config.get("patch_in_forward", True))
    has_patcher_weights = any(key.startswith("model.patcher.") for key in shapes)
    patcher = patcher_window = None
    if patch_in_forward:
        if not has_patcher_weights:
            raise InteropError("config has patch_in_forward = true but the checkpoint has no model.patcher.* weights")
        patcher = read_stack(config, "patcher_config", "model.patcher", shapes, HF_PATCHER_THETA)
        pw = _sub(config, "patcher_config").get("sliding_window", HF_WINDOW)
        if pw is not None and (isinstance(pw, bool) or not isinstance(pw, int) or pw < 1):
            raise InteropError(f"patcher_config.sliding_window must be a positive integer or null, got {pw!r}")
        patcher_window = UNLIMITED_WINDOW if pw is None else pw
    # The port applies the entropy threshold only when patch_size is set (a flag); otherwise its
    # patcher returns one byte per patch, and without a patcher it uses one byte per patch too.
    entropy_patching = (patch_in_forward and config.get("patching_mode", "entropy") == "entropy"
                        and config.get("patch_size", 4) is not None)
    threshold = config.get("patching_threshold")
    if entropy_patching and (isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold)):
        raise InteropError(f"patching_threshold must be a finite number for entropy patching, got {threshold!r}")
    max_len = config.get("max_patch_length")
    if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1):
        raise InteropError(f"max_patch_length must be a positive integer or null, got {max_len!r}")
    return HFBlt(
        encoder=enc, decoder=dec, global_=glob, patcher=patcher, patcher_window=patcher_window or UNLIMITED_WINDOW,
        k=k, window=window, hash_sizes=tuple(sizes), hash_functions=functions, hash_buckets=buckets,
        encoder_cross_all=bool(_sub(config, "encoder_config").get("cross_attn_all_layers", False)),
        decoder_cross_all=bool(_sub(config, "decoder_config").get("cross_attn_all_layers", True)),
        entropy_patching=entropy_patching, threshold=float(threshold) if entropy_patching else None,
        max_patch_length=max_len, tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
    )


def _k_from_shapes(shapes: Shapes, width: int) -> int | None:
    rows = _shape(shapes, "model.local_encoder.patch_embedding_projection.weight", 0)
    return rows // width if rows and width and rows % width == 0 else None


def _buckets_from_shapes(shapes: Shapes, tables: int) -> int | None:
    rows = _shape(shapes, "model.encoder_hash_tok_embedding.weight", 0)
    return rows // tables if rows and tables and rows % tables == 0 else None


def experiment_from_hf(hf: HFBlt, attention: str = "sdpa") -> dict[str, Any]:
    """blt experiment dict (``[model]``, ``[encoder]``, ``[decoder]``, ``[attention]``) for a port config."""
    enc, dec, glob = hf.encoder, hf.decoder, hf.global_
    return {
        "model": {
            "d_local": enc.width, "d_global": glob.width, "global_layers": glob.layers, "global_heads": glob.heads,
            "global_kv_heads": glob.kv_heads, "global_ffn": glob.ffn, "rope_theta": glob.theta, "norm_eps": glob.eps,
            "block_documents": False,  # the port's global attention is plain causal
        },
        "encoder": {
            "kind": PORT_KINDS["encoder"], "layers": enc.layers, "heads": enc.heads, "kv_heads": enc.kv_heads,
            "ffn_dim": enc.ffn, "window": hf.window, "hash_sizes": list(hf.hash_sizes),
            "hash_functions": hf.hash_functions, "hash_buckets": hf.hash_buckets,
            "k": hf.k, "cross_heads": enc.heads, "cross_all_layers": hf.encoder_cross_all, "cross_window": 1,
            "repool": hf.encoder_cross_all,  # the port pools afresh at every encoder cross-attention
            "block_documents": False,  # the port's local attention crosses an EOS inside a row
        },
        "decoder": {
            "kind": PORT_KINDS["decoder"], "layers": dec.layers, "heads": dec.heads, "kv_heads": dec.kv_heads,
            "ffn_dim": dec.ffn, "window": hf.window,  # the port reuses the encoder's sliding-window mask
            "k": hf.k, "cross_heads": dec.heads, "cross_all_layers": hf.decoder_cross_all, "cross_window": 1,
            "block_documents": False,
        },
        "attention": {"kind": attention},
    }


def entropy_model_config(hf: HFBlt) -> dict[str, Any]:
    """Fields of :class:`blt.entropy.TransformerEntropyConfig` for the port's patcher."""
    p = hf.patcher
    assert p is not None
    return {"dim": p.width, "layers": p.layers, "heads": p.heads, "kv_heads": p.kv_heads, "ffn_dim": p.ffn,
            "window": hf.patcher_window, "rope_theta": p.theta, "norm_eps": p.eps,
            "block_documents": False}  # the port's patcher attends across an EOS inside a row
