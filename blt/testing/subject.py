"""What the contract suite tests: a built patcher plus how to rebuild it with another config.

``resolve_subject`` accepts a registered kind (``"bpe"``), a ``PatcherSpec`` or a patcher object
(anything with ``incremental`` and ``patch``). Kinds and specs are built from ``config`` (a dict
or config struct) or their default config; entropy kinds (``needs_model``) build the same way.
"""

from __future__ import annotations

from typing import Any

import attrs
import msgspec

from blt.core.config import PatcherConfig, convert
from blt.core.errors import ConfigError
from blt.core.specs import PatcherSpec


@attrs.define
class Subject:
    """A patcher under test. ``build(config)`` rebuilds it (for ``max_patch_length`` variants)."""

    name: str
    patcher: Any
    declared_incremental: bool
    spec_incremental: bool | None = None
    config: PatcherConfig | None = None
    build: Any = None
    _variants: dict[int | None, Any] = attrs.field(factory=dict)

    def variant(self, *, max_patch_length: int) -> Any:
        """The patcher rebuilt with ``max_patch_length``, or None if it has no config to rebuild from."""
        if self.config is None or self.build is None:
            return None
        if max_patch_length not in self._variants:
            cfg = msgspec.structs.replace(self.config, max_patch_length=max_patch_length)
            self._variants[max_patch_length] = self.build(cfg)
        return self._variants[max_patch_length]

    def base_for_max_length(self) -> Any:
        """The patcher without a length cap (the subject itself when it has none)."""
        if self.config is None or self.config.max_patch_length is None:
            return self.patcher
        if None not in self._variants:
            self._variants[None] = self.build(msgspec.structs.replace(self.config, max_patch_length=None))
        return self._variants[None]


def _config_data(config: Any, kind: str) -> Any:
    if config is None:
        return {"kind": kind}
    if isinstance(config, dict) and "kind" not in config:
        return {"kind": kind, **config}
    return config


def resolve_subject(target: Any, *, registry: Any = None, config: Any = None) -> Subject:
    """Build the :class:`Subject` for a kind, a spec, a patcher object or a Subject."""
    if isinstance(target, Subject):
        return target
    if isinstance(target, str):
        if registry is None:
            import blt

            registry = blt.make_registry()
        spec = registry.spec("patchers", target, path="$.patcher")
        cfg = registry.config("patchers", _config_data(config, target), path="$.patcher")
        return _from_spec(spec, cfg)
    if isinstance(target, PatcherSpec):
        data = _config_data(config, target.name)
        cfg = data if isinstance(data, PatcherConfig) else convert(data, target.config_type, "$.patcher")
        if not isinstance(cfg, target.config_type):
            raise ConfigError(f"$.patcher: config {type(cfg).__name__} is not a {target.config_type.__name__}")
        return _from_spec(target, cfg)
    if hasattr(target, "patch") and hasattr(target, "incremental"):
        cfg = getattr(target, "config", None)
        cfg = cfg if isinstance(cfg, PatcherConfig) else None
        build = None
        spec_incremental = None
        if cfg is not None and registry is not None and cfg.kind in registry.patchers:
            spec = registry.patchers[cfg.kind]
            build, spec_incremental = spec.build, spec.incremental
        elif cfg is not None:
            build = type(target)  # the builtin convention: Patcher(config)
        name = cfg.kind if cfg is not None else type(target).__name__
        return Subject(name, target, bool(target.incremental), spec_incremental, cfg, build)
    raise TypeError(f"expected a patcher kind, a PatcherSpec or a patcher object, got {type(target).__name__}")


def _from_spec(spec: PatcherSpec, cfg: PatcherConfig) -> Subject:
    patcher = spec.build(cfg)
    return Subject(spec.name, patcher, bool(getattr(patcher, "incremental", spec.incremental)),
                   spec.incremental, cfg, spec.build)
