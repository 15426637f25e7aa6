"""Spec objects: what a plugin hands the registry for each component it provides.

A spec is a name, a typed msgspec config, a builder and a few declared properties. Model code
never dispatches on a string: the registry is consulted once, at build time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import attrs

from blt.core.config import AttentionConfig, DecoderConfig, EncoderConfig, ModelConfig, PatcherConfig

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _valid_name(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(f"component name {value!r} must match [a-z][a-z0-9_]*")


def _config_of(base: type) -> Callable[[Any, attrs.Attribute, Any], None]:
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if not (isinstance(value, type) and issubclass(value, base)):
            raise TypeError(f"{type(instance).__name__}.config_type must subclass {base.__name__}, got {value!r}")
        tag = value.__struct_config__.tag
        if tag != instance.name:
            raise ValueError(
                f"{type(instance).__name__} {instance.name!r}: config tag is {tag!r}; declare the config "
                f"with tag={instance.name!r}"
            )

    return check


@attrs.frozen
class PatcherSpec:
    """A patcher: ``build(config) -> Patcher``. ``incremental`` is checked by the contract suite."""

    name: str = attrs.field(validator=_valid_name)
    config_type: type[PatcherConfig] = attrs.field(validator=_config_of(PatcherConfig))
    build: Callable[[Any], Any]
    incremental: bool
    summary: str = ""
    needs_model: bool = False  # True when building needs a trained model file (entropy patchers)

    family = "patchers"


def _declared_masks(spec: Any) -> frozenset[str]:
    """The mask kinds a component declares once, on its class (``mask_kinds``)."""
    return frozenset(getattr(spec.build, "mask_kinds", ()))


@attrs.frozen
class EncoderSpec:
    """A local encoder: ``build(config, dims) -> nn.Module``.

    ``mask_kinds``: the masks it asks for, by default the ``mask_kinds`` its class declares (the
    one place they are written down). The module provides ``flops()`` and, optionally,
    ``incremental_step()`` for cached generation (see :mod:`blt.generate.steps`)."""

    name: str = attrs.field(validator=_valid_name)
    config_type: type[EncoderConfig] = attrs.field(validator=_config_of(EncoderConfig))
    build: Callable[..., Any]
    mask_kinds: frozenset[str] = attrs.field(converter=frozenset, default=attrs.Factory(_declared_masks, takes_self=True))
    summary: str = ""

    family = "encoders"


@attrs.frozen
class DecoderSpec:
    """A local decoder: ``build(config, dims) -> nn.Module``; ``mask_kinds`` as for encoders."""

    name: str = attrs.field(validator=_valid_name)
    config_type: type[DecoderConfig] = attrs.field(validator=_config_of(DecoderConfig))
    build: Callable[..., Any]
    mask_kinds: frozenset[str] = attrs.field(converter=frozenset, default=attrs.Factory(_declared_masks, takes_self=True))
    summary: str = ""

    family = "decoders"


def _always_available() -> str | None:
    return None


@attrs.frozen
class AttentionSpec:
    """An attention backend.

    ``mask_kinds``: the mask kinds it implements exactly (by default its class's ``mask_kinds``). ``is_available()`` returns None or the
    reason it cannot run here; ``can_train(device)`` returns None or why backward is unsupported.
    """

    name: str = attrs.field(validator=_valid_name)
    config_type: type[AttentionConfig] = attrs.field(validator=_config_of(AttentionConfig))
    build: Callable[..., Any]
    mask_kinds: frozenset[str] = attrs.field(converter=frozenset, default=attrs.Factory(_declared_masks, takes_self=True))
    is_available: Callable[[], str | None] = _always_available
    can_train: Callable[[Any], str | None] = lambda device: None
    summary: str = ""

    family = "attention"


@attrs.frozen
class ModelSpec:
    """A whole model: ``build(experiment, registry, patcher) -> nn.Module``.

    The module's contract: ``model(tokens [B, N], patch_lengths [B, P], targets [B, N])`` returns
    ``(summed cross-entropy in nats, number of target bytes)``; ``model.flops(n_bytes,
    avg_patch_size, attention)`` its forward FLOPs of one row by component; optionally
    ``model.incremental_step(patcher, batch, total)`` for cached generation. ``byte_causal``: the
    loss factorises over bytes, so the causality contract applies (False for token-level
    likelihoods such as a BPE-token transformer, whose tokens span several bytes).
    """

    name: str = attrs.field(validator=_valid_name)
    config_type: type[ModelConfig] = attrs.field(validator=_config_of(ModelConfig))
    build: Callable[..., Any]
    summary: str = ""
    byte_causal: bool = True

    family = "models"


SPEC_TYPES: dict[str, type] = {
    "patchers": PatcherSpec,
    "encoders": EncoderSpec,
    "decoders": DecoderSpec,
    "attention": AttentionSpec,
    "models": ModelSpec,
}
HOOK_NAMES: dict[str, str] = {
    "patchers": "blt_register_patchers",
    "encoders": "blt_register_encoders",
    "decoders": "blt_register_decoders",
    "attention": "blt_register_attention",
    "models": "blt_register_models",
}
FAMILY_OF_SECTION: dict[str, str] = {
    "patcher": "patchers",
    "encoder": "encoders",
    "decoder": "decoders",
    "attention": "attention",
    "model": "models",
}
