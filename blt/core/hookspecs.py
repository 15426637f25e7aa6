"""The plugin hooks: one per component family. Each returns an iterable of frozen spec objects.

Hooks are not ``firstresult``: registration enumerates, so every contribution is seen and
duplicates can be reported with both providers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

PROJECT_NAME = "blt"
ENTRY_POINT_GROUP = "blt.plugins"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

if TYPE_CHECKING:
    from blt.core.specs import AttentionSpec, DecoderSpec, EncoderSpec, ModelSpec, PatcherSpec


@hookspec
def blt_register_patchers() -> Iterable[PatcherSpec]:
    """Return the patchers this plugin provides. Called once when a Registry is built."""


@hookspec
def blt_register_encoders() -> Iterable[EncoderSpec]:
    """Return the local encoders this plugin provides."""


@hookspec
def blt_register_decoders() -> Iterable[DecoderSpec]:
    """Return the local decoders this plugin provides."""


@hookspec
def blt_register_attention() -> Iterable[AttentionSpec]:
    """Return the attention backends this plugin provides."""


@hookspec
def blt_register_models() -> Iterable[ModelSpec]:
    """Return the whole models this plugin provides (BLT, baselines, other architectures)."""
