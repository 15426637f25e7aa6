"""``build_blt``: consult the registry once and wire a BLT together from a decoded experiment.

Incompatible choices fail here, before any large tensor is allocated: an attention backend that
lacks a mask kind the chosen components need (the message lists the backends that would work),
a backend unavailable on this machine, or a backend that cannot train on the target device.
"""

from __future__ import annotations

from typing import Any

import torch

from blt.core.errors import ConfigError, UnavailableError
from blt.core.registry import Registry
from blt.model.blocks import TransformerLayer
from blt.model.blt import ByteLatentTransformer
from blt.model.config import SharedDims
from blt.model.global_transformer import GlobalTransformer
from blt.attention.masks import PATCH_BLOCK_CAUSAL, PATCH_CAUSAL


def required_mask_kinds(experiment: Any, registry: Registry) -> dict[str, str]:
    """``{mask kind: who needs it}`` for an experiment's encoder, decoder and global transformer."""
    needs: dict[str, str] = {}
    for section, family in (("encoder", "encoders"), ("decoder", "decoders")):
        kind = getattr(experiment, section).kind
        for mask in sorted(registry.spec(family, kind, path=f"$.{section}").mask_kinds):
            needs.setdefault(mask, f"{section} {kind!r}")
    needs.setdefault(PATCH_BLOCK_CAUSAL if experiment.model.block_documents else PATCH_CAUSAL, "global transformer")
    return needs


def check_attention(experiment: Any, registry: Registry, *, training: bool, device: torch.device,
                    needs: dict[str, str] | None = None) -> None:
    """Raise ConfigError / UnavailableError when the chosen backend cannot serve this model here.

    ``needs``: ``{mask kind: who needs it}`` (default: a BLT's, :func:`required_mask_kinds`)."""
    needs = required_mask_kinds(experiment, registry) if needs is None else needs
    name = experiment.attention.kind
    spec = registry.spec("attention", name, path="$.attention")
    missing = sorted(set(needs) - spec.mask_kinds)

    def alternatives() -> str:
        ok = []
        for other, other_spec in registry.attention.items():
            if other != name and set(needs) <= other_spec.mask_kinds:
                reason = other_spec.is_available()
                ok.append(other if reason is None else f"{other} (unavailable here: {reason})")
        return ", ".join(ok) or "(none registered)"

    if missing:
        what = "; ".join(f"{m} (needed by the {needs[m]})" for m in missing)
        raise ConfigError(f"$.attention.kind: backend {name!r} does not implement mask kind(s) {what}; "
                          f"backends that implement every mask this model needs: {alternatives()}")
    reason = spec.is_available()
    if reason is not None:
        raise UnavailableError(f"$.attention.kind: backend {name!r} is unavailable: {reason}; "
                               f"backends that would work: {alternatives()}")
    if training:
        reason = spec.can_train(device)
        if reason is not None:
            raise UnavailableError(f"$.attention.kind: backend {name!r} cannot train on {device}: {reason}")


def build_blt(experiment: Any, registry: Registry, *, device: torch.device | None = None,
              training: bool = False) -> ByteLatentTransformer:
    """The BLT of a decoded experiment (``[model] kind = "blt"``), on CPU.

    ``training=True`` also checks that the attention backend can run backward on ``device``
    (default: CPU).
    """
    target = torch.device(device) if device is not None else torch.device("cpu")
    check_attention(experiment, registry, training=training, device=target)
    dims = SharedDims.from_config(experiment.model)
    encoder = registry.spec("encoders", experiment.encoder.kind).build(experiment.encoder, dims)
    out_dim = getattr(encoder, "out_dim", None)
    if not isinstance(out_dim, int) or out_dim < 1:
        raise ConfigError(f"$.encoder.kind: encoder {experiment.encoder.kind!r} does not declare a positive out_dim")
    global_transformer = GlobalTransformer(experiment.model, out_dim)
    decoder = registry.spec("decoders", experiment.decoder.kind).build(experiment.decoder, dims)
    backend = registry.spec("attention", experiment.attention.kind).build(experiment.attention)
    model = ByteLatentTransformer(encoder, global_transformer, decoder, backend, experiment.model.d_local)
    if experiment.model.compile:
        for module in model.modules():
            if isinstance(module, TransformerLayer):
                module.compiled = True
    return model
