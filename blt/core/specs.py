"""Spec objects: what a plugin hands the registry for each component it provides.

A spec is a name, a typed msgspec config, a builder and a few declared properties. Model code
never dispatches on a string: the registry is consulted once, at build time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import attrs

from blt.core.config import AttentionConfig, DecoderConfig, EncoderConfig, PatcherConfig

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


@attrs.frozen
class EncoderSpec:
    """A local encoder: ``build(config, dims) -> nn.Module``; ``mask_kinds`` are the masks it asks for."""

    name: str = attrs.field(validator=_valid_name)
    config_type: type[EncoderConfig] = attrs.field(validator=_config_of(EncoderConfig))
    build: Callable[..., Any]
    mask_kinds: frozenset[str] = attrs.field(converter=frozenset, factory=frozenset)
    summary: str = ""

    family = "encoders"


@attrs.frozen
class DecoderSpec:
    """A local decoder: ``build(config, dims) -> nn.Module``; ``mask_kinds`` are the masks it asks for."""

    name: str = attrs.field(validator=_valid_name)
    config_type: type[DecoderConfig] = attrs.field(validator=_config_of(DecoderConfig))
    build: Callable[..., Any]
    mask_kinds: frozenset[str] = attrs.field(converter=frozenset, factory=frozenset)
    summary: str = ""

    family = "decoders"


def _always_available() -> str | None:
    return None


@attrs.frozen
class AttentionSpec:
    """An attention backend.

    ``mask_kinds``: the mask kinds it implements exactly. ``is_available()`` returns None or the
    reason it cannot run here; ``can_train(device)`` returns None or why backward is unsupported.
    """

    name: str = attrs.field(validator=_valid_name)
    config_type: type[AttentionConfig] = attrs.field(validator=_config_of(AttentionConfig))
    build: Callable[..., Any]
    mask_kinds: frozenset[str] = attrs.field(converter=frozenset, factory=frozenset)
    is_available: Callable[[], str | None] = _always_available
    can_train: Callable[[Any], str | None] = lambda device: None
    summary: str = ""

    family = "attention"


SPEC_TYPES: dict[str, type] = {
    "patchers": PatcherSpec,
    "encoders": EncoderSpec,
    "decoders": DecoderSpec,
    "attention": AttentionSpec,
}
HOOK_NAMES: dict[str, str] = {
    "patchers": "blt_register_patchers",
    "encoders": "blt_register_encoders",
    "decoders": "blt_register_decoders",
    "attention": "blt_register_attention",
}
FAMILY_OF_SECTION: dict[str, str] = {
    "patcher": "patchers",
    "encoder": "encoders",
    "decoder": "decoders",
    "attention": "attention",
}
