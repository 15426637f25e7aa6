"""The experiment config and ``build_model``: fixed sections plus one tagged component per family.

The component unions depend on what is registered, so the struct type is built per registry.
Kinds are checked against the registry before decoding, so an unknown kind lists the registered
alternatives and suggests the closest. This module sits above ``core``, ``model``, ``data`` and
``train`` (it imports their config structs); none of them imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import msgspec

from blt.core.config import Config, convert, read_config_file
from blt.core.errors import ConfigError
from blt.core.registry import Registry, registry_for
from blt.core.specs import FAMILY_OF_SECTION
from blt.data.config import DataConfig
from blt.train.config import BudgetConfig, RunConfig, TrainConfig, check_moved_to_run


class PluginsConfig(Config):
    """``[plugins]``: names to block and whether to load entry-point plugins."""

    block: list[str] = []
    autoload: bool | None = None


# Fixed (non-plugin) sections: name -> struct type. Later subsystems add theirs here.
FIXED_SECTIONS: dict[str, type] = {
    "plugins": PluginsConfig,
    "data": DataConfig,
    "train": TrainConfig,
    "budget": BudgetConfig,
    "run": RunConfig,  # the run environment: a run's fingerprint is every section but this one
}

DEFAULT_KINDS: dict[str, str] = {
    "model": "blt",
    "patcher": "space",
    "encoder": "cross_attention",
    "decoder": "cross_attention",
    "attention": "sdpa",
}


def experiment_type(registry: Registry) -> type[msgspec.Struct]:
    """The experiment struct for this registry's config types (used for decoding and ``blt schema``)."""
    fields: list[tuple[str, Any, Any]] = []
    for section, type_ in FIXED_SECTIONS.items():
        fields.append((section, type_, msgspec.field(default_factory=type_)))
    for section, family in FAMILY_OF_SECTION.items():
        specs = registry.family(family)
        if not specs:
            continue
        types = tuple(spec.config_type for spec in specs.values())
        union = types[0] if len(types) == 1 else Union[types]  # noqa: UP007 - built dynamically
        default_kind = DEFAULT_KINDS.get(section)
        if default_kind in specs:
            fields.append((section, union, msgspec.field(default_factory=specs[default_kind].config_type)))
        else:
            fields.append((section, union, msgspec.field(default_factory=next(iter(types)))))
    return msgspec.defstruct(
        "ExperimentConfig", fields, frozen=True, forbid_unknown_fields=True, kw_only=True, module=__name__
    )


def load_experiment(source: str | Path | Mapping[str, Any] | msgspec.Struct, registry: Registry | None = None) -> tuple[Any, Registry]:
    """Decode an experiment from a TOML/JSON path, a mapping, or pass a struct through.

    Returns ``(config, registry)``; the registry honours the config's ``[plugins]`` table unless given.
    """
    if isinstance(source, msgspec.Struct):
        if registry is None:
            plugins = getattr(source, "plugins", None)
            registry = registry_for({"plugins": msgspec.to_builtins(plugins)} if plugins is not None else None)
        return source, registry
    data = read_config_file(source) if isinstance(source, (str, Path)) else dict(source)
    if registry is None:
        registry = registry_for(data)
    for section, family in FAMILY_OF_SECTION.items():
        if section in data:
            value = data[section]
            if isinstance(value, str):
                data[section] = value = {"kind": value}
            elif isinstance(value, Mapping) and "kind" not in value and section in DEFAULT_KINDS:
                data[section] = value = {"kind": DEFAULT_KINDS[section], **value}  # e.g. [model] alone: a BLT
            # decoded once, here, by its registered config type (errors name the field path)
            data[section] = registry.config(family, value, path=f"$.{section}")
    check_moved_to_run(data)
    return convert(data, experiment_type(registry), "$"), registry


def build_model(
    config: Any,
    registry: Registry | None = None,
    *,
    patcher: Any = None,
    device: Any = None,
    training: bool = False,
) -> Any:
    """Build the experiment's ``[model]`` (struct, TOML/JSON path or mapping) through its model plugin.

    ``patcher``: the experiment's patcher when already built (models that read it, e.g. the
    BPE-token transformer's tokenizer, build it otherwise). ``training=True`` also checks that
    the attention backend can run backward on ``device`` (default: CPU). The model is created on
    CPU and moved to ``device`` when given.
    """
    import torch

    experiment, registry = load_experiment(config, registry)
    spec = registry.spec("models", experiment.model.kind, path="$.model")
    target = torch.device(device) if device is not None else torch.device("cpu")
    model = spec.build(experiment, registry, patcher=patcher, device=target, training=training)
    return model.to(target) if device is not None else model


def experiment_schema(registry: Registry) -> dict[str, Any]:
    """JSON Schema of the experiment config for this registry (editor completion)."""
    return msgspec.json.schema(experiment_type(registry))


def with_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` into ``base`` (plain data). A component table that changes ``kind``
    replaces the base table instead of merging (fields of one kind rarely fit another)."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            old = out[key]
            if key in FAMILY_OF_SECTION and "kind" in value and value.get("kind") != old.get("kind"):
                out[key] = dict(value)
            else:
                out[key] = with_overrides(old, value)
        else:
            out[key] = value
    return out


__all__ = ["build_model", "experiment_schema", "experiment_type", "load_experiment", "with_overrides", "ConfigError"]
