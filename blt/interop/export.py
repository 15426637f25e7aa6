"""Export a blt BLT to Hugging Face transformers' ``BltForCausalLM`` (``config.json`` + ``model.safetensors``).

```python
notes = blt.interop.save_hf(model, experiment, patcher, "out")   # needs transformers; `blt export RUN OUT`
hf = transformers.BltForCausalLM.from_pretrained("out")
hf(input_ids=ids, patch_lengths=blt.interop.hf_patch_lengths(patcher, ids), use_cache=False).logits
```

It is the importer read backwards, never a second copy of it: tensor names go through convert's one
table (:func:`blt.interop.convert.hf_name`), and the config written is read back by the importer
(:func:`read_hf_config`, :func:`experiment_from_hf`, :func:`entropy_model_config`) and compared field
by field with the run's own. A field whose value the port would compute differently is refused, as is
a field the importer does not map (the port has no such option), all of them named in one line;
only fields with no effect on the forward maths (init, compile, the attention backend) are skipped.

- Document blocking: blt's attention stops at an EOS inside a row (``block_documents``, its
  default); the port's never does. Such a model is refused unless ``cross_documents=True``: rows of
  one document (EOS at most at the end) then give the same logits, rows packing several do not.
- Patchers: ``entropy`` with a global threshold is the port's own patcher (its transformer goes to
  ``model.patcher.*``); ``byte`` is the port's fallback (one byte per patch). Any other patcher
  (strided, space, bpe, cnn_entropy, a relative threshold) exports with a note: the port then uses
  one byte per patch unless the caller passes ``patch_lengths`` (:func:`hf_patch_lengths`). A
  builtin one that needs no model or file is recorded under ``blt_patcher`` in ``config.json``,
  so ``blt.load(OUT)`` and :func:`blt.interop.load_hf_checkpoint` give it back.
- Cross-attention: the port shares k/v between the heads of a GQA group (the local stack's
  ``kv_heads``); blt's has one k/v per head, so it exports only when those are equal per group
  (as after importing such a checkpoint).
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import msgspec
import torch

from blt.core.atomic import atomic_path, atomic_write_text
from blt.core.errors import UnavailableError
from blt.interop.checkpoint import CONFIG, SINGLE
from blt.interop.convert import BLT_PATCHER, CROSS_KV, hf_name
from blt.interop.hf_config import (
    PORT_ENTROPY_PATCHER, PORT_FALLBACK_PATCHER, PORT_KINDS, UNLIMITED_WINDOW, VOCAB, InteropError, entropy_model_config,
    experiment_from_hf, read_hf_config,
)
from blt.model.blocks import ffn_hidden_dim
from blt.tokens import BOS_ID, EOS_ID, PAD_ID

HASH_KEY = "model.encoder_hash_tok_embedding.weight"
INERT = {"model": {"kind", "init_std_factor", "compile"}, "encoder": {"kind"}, "decoder": {"kind"}}
WHY = {
    "decoder.window": "one local_attention_window_len serves both local stacks, the encoder's",
    "decoder.k": "one cross_attn_k serves both local stacks, the encoder's",
    "encoder.cross_heads": "its cross-attention has the local stack's head count",
    "decoder.cross_heads": "its cross-attention has the local stack's head count",
    "encoder.cross_window": "a patch's slots read only that patch's bytes",
    "decoder.cross_window": "a byte reads only one patch",
    "encoder.repool": "with cross-attention after every layer it pools the slots afresh at each one",
}
PORT_PATCH_SIZE = 4  # the port reads patch_size only as "apply the threshold" (any non-null value)


def save_hf(model: torch.nn.Module, experiment: Any, patcher: Any, out: str | pathlib.Path, *,
            cross_documents: bool = False) -> list[str]:
    """Write ``out/config.json`` and ``out/model.safetensors`` for ``BltForCausalLM.from_pretrained``.

    ``experiment``: the run's decoded config; ``patcher``: its built patcher (an ``entropy`` one
    with its model loadable). Returns notes for the caller to show; refusals raise one-line
    :class:`InteropError`, a missing transformers one-line :class:`UnavailableError`.
    """
    from blt.interop import _transformers

    transformers = _transformers()
    if "local_attention_window_len" not in transformers.BltConfig().to_dict():
        raise UnavailableError(f"transformers {transformers.__version__}'s BLT port has no local_attention_window_len "
                               "(its local attention ignores blt's window); upgrade transformers to export")
    out = pathlib.Path(out)
    _refuse_kinds(experiment)
    entropy_model = _port_entropy_model(patcher)
    tensors = hf_tensors(model, experiment, entropy_model)
    fields = hf_config_fields(experiment, patcher, entropy_model)
    fields["dtype"] = str(tensors["lm_head.weight"].dtype).removeprefix("torch.")
    record, notes = _patcher_notes(patcher, entropy_model)
    if record is not None:
        fields[BLT_PATCHER] = record
    config = transformers.BltConfig(**fields)
    text = config.to_json_string(use_diff=False)  # every field: the port's defaults drift between versions
    notes += _check_round_trip(experiment, patcher, entropy_model, json.loads(text), tensors, cross_documents)
    _check_port_layout(transformers, config, tensors)
    _write(out, text, tensors)
    return notes


def _patcher_notes(patcher: Any, entropy_model: torch.nn.Module | None) -> tuple[dict[str, Any] | None, list[str]]:
    """``(blt_patcher record or None, notes)`` for the run's patcher."""
    if entropy_model is not None:
        if patcher.config.max_patch_length is None:
            return None, []
        return None, ["with max_patch_length the port's own patching drops the next-token patch, so its last position "
                      "may read one patch earlier; pass patch_lengths (blt.interop.hf_patch_lengths) for exact logits"]
    if patcher.config.kind == PORT_FALLBACK_PATCHER:
        return None, []  # the port's own fallback: one byte per patch
    record = _record(patcher)
    return record, [f"the port has no {_patcher_name(patcher)} patcher: the exported model uses one byte per patch "
                    "unless you pass patch_lengths, e.g. hf(input_ids=ids, patch_lengths="
                    "blt.interop.hf_patch_lengths(patcher, ids), use_cache=False), with the patcher of blt.load(RUN)"
                    + (" or blt.load(OUT)" if record is not None else "")]


def hf_patch_lengths(patcher: Any, tokens: torch.Tensor) -> torch.Tensor:
    """``[B, P]`` lengths for the port's ``forward(..., patch_lengths=)`` that give blt's logits.

    The patcher's lengths with the next-token position (each row sums to N + 1), and BOS a patch of
    its own: blt's model splits a longer first patch (a ``strided`` one) itself, the port does not.
    """
    from blt.model.layout import split_first_patch

    lengths = patcher.patch(tokens, include_next_token=True).lengths
    return split_first_patch(lengths if lengths.dim() == 2 else lengths[None])


def _patcher_name(patcher: Any) -> str:
    kind = patcher.config.kind
    if kind == PORT_ENTROPY_PATCHER and getattr(patcher, "relative_threshold", None) is not None:
        return "'entropy' (relative_threshold)"
    return repr(kind)


def _refuse_kinds(experiment: Any) -> None:
    kind = experiment.model.kind
    if kind != PORT_KINDS["model"]:
        raise InteropError(f"cannot export to Hugging Face: model kind {kind!r} ($.model.kind); the port is a BLT "
                           f"([model] kind = \"{PORT_KINDS['model']}\")")
    problems = [f"{section} {getattr(experiment, section).kind!r} ($.{section}.kind; the port's is {PORT_KINDS[section]!r})"
                for section in ("encoder", "decoder") if getattr(experiment, section).kind != PORT_KINDS[section]]
    if problems:
        raise InteropError("cannot export to Hugging Face: the port has no " + " and no ".join(problems))


def _port_entropy_model(patcher: Any) -> torch.nn.Module | None:
    """The transformer entropy model when the port's own patcher can run ``patcher``, else None."""
    from blt.entropy.transformer import TransformerEntropyModel

    if patcher.config.kind != PORT_ENTROPY_PATCHER or getattr(patcher, "threshold", None) is None:
        return None
    model = patcher.model  # loads it (a one-line error when its file is missing)
    return model if isinstance(model, TransformerEntropyModel) else None


def _record(patcher: Any) -> dict[str, Any] | None:
    """The patcher's table when blt can rebuild it from ``config.json`` alone: a builtin kind that
    needs no entropy model and names no file."""
    from blt.core.registry import make_registry

    registry = make_registry(autoload=False)
    table = msgspec.to_builtins(patcher.config)
    kind = table["kind"]
    if kind not in registry.patchers or registry.spec("patchers", kind).needs_model:
        return None
    if any(name.endswith("_path") and value is not None for name, value in table.items()):
        return None
    return table


def hf_tensors(model: torch.nn.Module, experiment: Any, entropy_model: torch.nn.Module | None = None) -> dict[str, torch.Tensor]:
    """The port's state dict (names and layouts) of a blt model and its entropy model."""
    tensors: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        key = hf_name(name)
        if key is None:
            raise InteropError(f"cannot export to Hugging Face: tensor {name} has no place in the port's layout")
        if ".cross_attn_layers." in name and name.endswith(CROSS_KV):
            section = "encoder" if name.startswith("encoder.") else "decoder"
            tensor = _shared_kv(tensor, getattr(experiment, section), section, key)
        tensors[key] = tensor
    if HASH_KEY not in tensors:  # hash embeddings off: the port still holds an empty table
        tensors[HASH_KEY] = torch.zeros(0, experiment.model.d_local)
    if entropy_model is not None:
        tensors.update({hf_name(name, patcher=True): t for name, t in entropy_model.state_dict().items()})
    seen: set[int] = set()
    out = {}
    for key, tensor in tensors.items():  # safetensors refuses tensors that share memory
        tensor = tensor.detach().cpu().contiguous()
        ptr = tensor.data_ptr()
        out[key] = tensor.clone() if ptr in seen and tensor.numel() else tensor
        seen.add(ptr)
    return out


def _shared_kv(weight: torch.Tensor, stack: Any, section: str, key: str) -> torch.Tensor:
    """Cross-attention k/v ``[h*hd, d]`` -> the port's ``[kv*hd, d]`` (one k/v per GQA group)."""
    heads, kv_heads = stack.heads, stack.kv_heads or stack.heads
    if kv_heads == heads:
        return weight
    rows, d = weight.shape
    grouped = weight.view(kv_heads, heads // kv_heads, rows // heads, d)
    if not torch.equal(grouped, grouped[:, :1].expand_as(grouped)):
        raise InteropError(f"cannot export to Hugging Face: $.{section}.kv_heads = {kv_heads} < heads = {heads}, and the "
                           f"port's cross-attention then shares k/v between the {heads // kv_heads} heads of a group, "
                           f"while this model's ({key}) differ between them")
    return grouped[:, 0].reshape(kv_heads * (rows // heads), d)


def _stack(width: int, layers: int, heads: int, kv_heads: int | None, ffn: int, theta: float, eps: float) -> dict[str, Any]:
    return {"hidden_size": width, "num_hidden_layers": layers, "num_attention_heads": heads,
            "num_key_value_heads": kv_heads or heads, "intermediate_size": ffn, "rms_norm_eps": eps,
            "rope_parameters": {"rope_type": "default", "rope_theta": theta},
            "rope_theta": theta}  # the field name of older transformers; newer ones fold it into rope_parameters


def hf_config_fields(experiment: Any, patcher: Any, entropy_model: torch.nn.Module | None) -> dict[str, Any]:
    """Keyword arguments of ``transformers.BltConfig`` for a blt experiment (the importer's inverse)."""
    m, enc, dec = experiment.model, experiment.encoder, experiment.decoder
    hashed = bool(enc.hash_functions and enc.hash_sizes)
    local = {"cross_attn_k": enc.k, "hidden_size_global": m.d_global, "hidden_act": "silu"}
    fields: dict[str, Any] = {
        "architectures": ["BltForCausalLM"], "model_type": "blt",
        "vocab_size": VOCAB, "max_position_embeddings": experiment.data.seq_len,
        "rope_parameters": {"rope_type": "default", "rope_theta": m.rope_theta},  # unused by the port; kept equal
        "cross_attn_k": enc.k, "local_attention_window_len": enc.window,
        "encoder_hash_byte_group_size": list(enc.hash_sizes) or [3],  # the port reads [] as its default sizes
        "encoder_hash_byte_group_nb_functions": enc.hash_functions if hashed else 0,
        "encoder_hash_byte_group_vocab": enc.hash_buckets,
        "encoder_config": {**_stack(m.d_local, enc.layers, enc.heads, enc.kv_heads, enc.ffn_dim or ffn_hidden_dim(m.d_local),
                                    m.rope_theta, m.norm_eps), **local, "cross_attn_all_layers": enc.cross_all_layers},
        "decoder_config": {**_stack(m.d_local, dec.layers, dec.heads, dec.kv_heads, dec.ffn_dim or ffn_hidden_dim(m.d_local),
                                    m.rope_theta, m.norm_eps), **local, "cross_attn_all_layers": dec.cross_all_layers},
        "global_config": {**_stack(m.d_global, m.global_layers, m.global_heads, m.global_kv_heads,
                                   m.global_ffn or ffn_hidden_dim(m.d_global), m.rope_theta, m.norm_eps), "hidden_act": "silu"},
        "tie_word_embeddings": False,
        "use_cache": False,  # the port's cache crashes or diverges from uncached output
        "bos_token_id": BOS_ID, "eos_token_id": EOS_ID, "pad_token_id": PAD_ID,
        "max_patch_length": None, "patch_in_forward": entropy_model is not None,
    }
    if entropy_model is not None:
        e = entropy_model.config
        fields.update(
            patching_mode="entropy", patch_size=PORT_PATCH_SIZE, patching_threshold=float(patcher.threshold),
            max_patch_length=patcher.config.max_patch_length,
            patcher_config={**_stack(e.dim, e.layers, e.heads, e.kv_heads, e.ffn_dim, e.rope_theta, e.norm_eps),
                            "sliding_window": None if e.window >= UNLIMITED_WINDOW else e.window},
        )
    return fields


def _resolved(section: str, table: dict[str, Any], d_local: int) -> dict[str, Any]:
    """A section with its derived defaults filled in and inert combinations dropped (both sides alike)."""
    t = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}
    if section == "model":
        t["global_kv_heads"] = t.get("global_kv_heads") or t.get("global_heads")
        t["global_ffn"] = t.get("global_ffn") or ffn_hidden_dim(t["d_global"])
        return t
    t["kv_heads"] = t.get("kv_heads") or t.get("heads")
    t["ffn_dim"] = t.get("ffn_dim") or ffn_hidden_dim(d_local)
    if section == "encoder":
        if not (t.get("hash_functions") and t.get("hash_sizes")):
            t.update(hash_functions=0, hash_sizes=(), hash_buckets=None)
        if not t.get("cross_all_layers") or t.get("layers") == 1:
            t.pop("repool", None)  # pooling once or at each cross-attention is the same then
    return t


def _differences(section: str, ours: dict[str, Any], port: dict[str, Any], inert: set[str]) -> tuple[list[str], list[str]]:
    """``(refusals, document fields set)``: fields the port computes differently or lacks."""
    problems, documents = [], []
    for field in sorted(set(ours) | set(port)):
        path = f"$.{section}.{field}" if section in INERT else f"{section} {field}"
        if field in inert:
            continue
        if field not in port:
            problems.append(f"{path} = {ours[field]!r} (the port has no such option)")
        elif field == "block_documents":
            if ours.get(field, True) and not port[field]:
                documents.append(path)
        elif field not in ours or ours[field] != port[field]:
            why = WHY.get(f"{section}.{field}")
            problems.append(f"{path} = {ours.get(field)!r} (the port's is {port[field]!r}" + (f": {why})" if why else ")"))
    return problems, documents


def _check_round_trip(experiment: Any, patcher: Any, entropy_model: torch.nn.Module | None, data: dict[str, Any],
                      tensors: dict[str, torch.Tensor], cross_documents: bool) -> list[str]:
    """Read ``data`` back with the importer; refuse every field it would compute differently."""
    hf = read_hf_config(data, {k: tuple(v.shape) for k, v in tensors.items()})
    back = experiment_from_hf(hf)
    d_local = experiment.model.d_local
    problems: list[str] = []
    documents: list[str] = []
    for section in ("model", "encoder", "decoder"):
        ours = _resolved(section, msgspec.to_builtins(getattr(experiment, section)), d_local)
        p, d = _differences(section, ours, _resolved(section, back[section], d_local), INERT[section])
        problems += p
        documents += d
    if entropy_model is not None:
        ours = msgspec.to_builtins(entropy_model.config)
        ours.pop("kind", None)
        ours["kv_heads"] = ours.get("kv_heads") or ours.get("heads")
        p, d = _differences("the entropy model's", ours, entropy_model_config(hf), set())
        problems += p
        documents += d
        if hf.threshold != float(patcher.threshold) or hf.max_patch_length != patcher.config.max_patch_length:
            problems.append(f"$.patcher threshold {patcher.threshold!r} / max_patch_length {patcher.config.max_patch_length!r} "
                            f"(the port's are {hf.threshold!r} / {hf.max_patch_length!r})")
    if documents and not cross_documents:
        problems.append(f"{', '.join(documents)} = true (blt's attention stops at an EOS inside a row, the port's does not, "
                        "so rows packing several documents would get other logits); train with block_documents = false, "
                        "or export with --cross-documents (cross_documents=True) to feed the port one document per row, "
                        "whose logits are the same")
    if problems:
        raise InteropError("cannot export to Hugging Face: " + "; ".join(problems))
    if documents:
        return [f"{', '.join(documents)} = true: the port attends across an EOS inside a row, so feed it one document "
                "per row (EOS at most at the end) for the same logits"]
    return []


def _check_port_layout(transformers: Any, config: Any, tensors: dict[str, torch.Tensor]) -> None:
    """Every tensor the port's model has, with its shape, and nothing else (built on the meta device)."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in transformers.BltForCausalLM(config).state_dict().items()}
    ours = {k: tuple(v.shape) for k, v in tensors.items()}
    missing, extra = sorted(set(expected) - set(ours)), sorted(set(ours) - set(expected))
    bad = sorted(k for k in set(expected) & set(ours) if expected[k] != ours[k])
    if missing or extra or bad:
        raise InteropError(f"cannot export to Hugging Face: the port's model (transformers {transformers.__version__}) "
                           f"does not match the exported tensors (missing {missing[:3]}, unexpected {extra[:3]}, "
                           f"other shapes {bad[:3]})")


def _write(out: pathlib.Path, config_text: str, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    if out.exists() and not out.is_dir():
        raise InteropError(f"cannot export to {out}: it is a file, not a directory")
    existing = out / CONFIG
    if existing.is_file():
        try:
            is_hf = "model_type" in json.loads(existing.read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError):
            is_hf = False
        if not is_hf:
            raise InteropError(f"cannot export to {out}: it holds another {CONFIG} (a blt run or export?); choose an empty directory")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / SINGLE) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    atomic_write_text(out / CONFIG, config_text)  # last: a config.json means the directory is complete


__all__ = ["hf_config_fields", "hf_patch_lengths", "hf_tensors", "save_hf"]
