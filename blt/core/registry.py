"""The component registry, built once on pluggy, validated, then frozen.

``make_registry()`` registers the builtin plugin modules (a tuple of module paths, so a source
checkout works without install metadata), then third-party plugins from the ``blt.plugins``
entry-point group, each load wrapped so a failure names the plugin and its distribution.
Nothing here is module-level mutable state: every call builds a new registry.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import types
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import pluggy

from blt.core import hookspecs
from blt.core.config import ComponentConfig, convert, suggest
from blt.core.errors import ConfigError, PluginError
from blt.core.specs import FAMILY_OF_SECTION, HOOK_NAMES, SPEC_TYPES

BUILTIN_PLUGINS: tuple[str, ...] = (
    "blt.plugins.patchers.strided",
    "blt.plugins.patchers.byte",
    "blt.plugins.patchers.space",
    "blt.plugins.patchers.bpe",
    "blt.plugins.patchers.entropy",
    "blt.plugins.patchers.cnn_entropy",
    "blt.plugins.encoders.cross_attention",
    "blt.plugins.encoders.pooling",
    "blt.plugins.decoders.cross_attention",
    "blt.plugins.decoders.add",
    "blt.plugins.attention.eager",
    "blt.plugins.attention.sdpa",
    "blt.plugins.attention.flex",
    "blt.plugins.attention.flash",
    "blt.plugins.models.blt",
    "blt.plugins.models.byte",
    "blt.plugins.models.bpe_token",
    "blt.plugins.models.dynamic_chunking",
)

ENV_DISABLE_AUTOLOAD = "BLT_DISABLE_PLUGIN_AUTOLOAD"
ENV_BLOCK = "BLT_BLOCK_PLUGINS"


@attrs.frozen
class Provenance:
    """Where a component came from: the pluggy plugin name and its distribution."""

    plugin: str
    distribution: str
    version: str

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} from distribution '{self.distribution} {self.version}'"


def _own_version() -> str:
    try:
        return md.version("blt-lab")
    except md.PackageNotFoundError:
        return "source"


@attrs.frozen
class Registry:
    """Frozen mappings from kind to spec, one per family, plus where each came from."""

    patchers: Mapping[str, Any]
    encoders: Mapping[str, Any]
    decoders: Mapping[str, Any]
    attention: Mapping[str, Any]
    models: Mapping[str, Any]
    provenance: Mapping[tuple[str, str], Provenance]
    blocked: tuple[str, ...] = ()

    def family(self, family: str) -> Mapping[str, Any]:
        if family not in SPEC_TYPES:
            raise KeyError(f"unknown family {family!r}; families: {', '.join(SPEC_TYPES)}")
        return getattr(self, family)

    def spec(self, family: str, kind: str, *, path: str = "$") -> Any:
        table = self.family(family)
        if kind not in table:
            raise ConfigError(f"{path}.kind: unknown {singular(family)} kind {kind!r}; {suggest(kind, list(table))}")
        return table[kind]

    def config(self, family: str, data: Any, *, path: str | None = None) -> ComponentConfig:
        """Decode a dict (or pass through a config struct) into the registered config type."""
        path = path or f"$.{family}"
        if isinstance(data, ComponentConfig):
            spec = self.spec(family, data.kind, path=path)
            if not isinstance(data, spec.config_type):
                raise ConfigError(f"{path}: config of type {type(data).__name__} does not belong to kind {data.kind!r}")
            return data
        if isinstance(data, str):
            data = {"kind": data}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: expected a table with a 'kind' field, got {type(data).__name__}")
        kind = data.get("kind")
        if kind is None:
            raise ConfigError(f"{path}.kind: missing; {suggest('', list(self.family(family)))}")
        if not isinstance(kind, str):
            raise ConfigError(f"{path}.kind: expected a string, got {type(kind).__name__}")
        spec = self.spec(family, kind, path=path)
        return convert(dict(data), spec.config_type, path)

    def build_patcher(self, config: Any) -> Any:
        cfg = self.config("patchers", config, path="$.patcher")
        return self.patchers[cfg.kind].build(cfg)

    def provider(self, family: str, kind: str) -> Provenance:
        return self.provenance[(family, kind)]

    @classmethod
    def from_plugin_manager(
        cls,
        pm: pluggy.PluginManager,
        blocked: Iterable[str] = (),
        distributions: Mapping[str, tuple[str, str]] | None = None,
    ) -> Registry:
        """Call every hook implementation one by one, recording which plugin gave each spec."""
        tables: dict[str, dict[str, Any]] = {f: {} for f in SPEC_TYPES}
        provenance: dict[tuple[str, str], Provenance] = {}
        for family, hook_name in HOOK_NAMES.items():
            hook = getattr(pm.hook, hook_name)
            for impl in hook.get_hookimpls():  # registration order
                prov = _provenance(pm, impl.plugin, distributions or {})
                try:
                    specs = impl.function()
                    specs = list(specs or ())
                except Exception as exc:
                    raise PluginError(f"{prov}: hook {hook_name} raised {type(exc).__name__}: {exc}") from exc
                for spec in specs:
                    if not isinstance(spec, SPEC_TYPES[family]):
                        raise PluginError(
                            f"{prov}: {hook_name} returned {type(spec).__name__}, expected {SPEC_TYPES[family].__name__}"
                        )
                    if spec.name in tables[family]:
                        other = provenance[(family, spec.name)]
                        raise PluginError(
                            f"duplicate {singular(family)} kind {spec.name!r}: "
                            f"provided by {other} and by {prov}; block one with [plugins] block or ${ENV_BLOCK}"
                        )
                    tables[family][spec.name] = spec
                    provenance[(family, spec.name)] = prov
        return cls(
            **{f: types.MappingProxyType(dict(sorted(t.items()))) for f, t in tables.items()},
            provenance=types.MappingProxyType(provenance),
            blocked=tuple(blocked),
        )


def singular(family: str) -> str:
    """``patchers`` -> ``patcher``; ``attention`` stays."""
    return family[:-1] if family.endswith("s") else family


def _provenance(pm: pluggy.PluginManager, plugin: object, distributions: Mapping[str, tuple[str, str]]) -> Provenance:
    name = pm.get_name(plugin) or repr(plugin)
    if name in distributions:
        return Provenance(name, *distributions[name])
    module = getattr(plugin, "__name__", "")
    if isinstance(module, str) and module.startswith("blt."):
        return Provenance(name, "blt-lab", _own_version())
    return Provenance(name, "(not installed)", "-")


def _blocked_from_env() -> list[str]:
    raw = os.environ.get(ENV_BLOCK, "")
    return [b.strip() for b in raw.replace(";", ",").split(",") if b.strip()]


def _autoload_default() -> bool:
    return os.environ.get(ENV_DISABLE_AUTOLOAD, "").strip().lower() not in {"1", "true", "yes", "on"}


def make_plugin_manager(
    *,
    autoload: bool | None = None,
    block: Iterable[str] = (),
    plugins: Iterable[object] = (),
    builtins: Iterable[str] = BUILTIN_PLUGINS,
) -> tuple[pluggy.PluginManager, list[str], dict[str, tuple[str, str]]]:
    """A validated plugin manager, the blocked names and ``{plugin name: (distribution, version)}``."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    blocked = [*block, *_blocked_from_env()]
    for name in blocked:
        pm.set_blocked(name)
    for modname in builtins:
        if pm.is_blocked(modname) or pm.is_blocked(modname.rsplit(".", 1)[-1]):
            continue
        try:
            module = importlib.import_module(modname)
        except Exception as exc:
            raise PluginError(f"builtin plugin {modname!r} from distribution 'blt-lab {_own_version()}' failed to import: {type(exc).__name__}: {exc}") from exc
        pm.register(module, name=modname)
    if autoload is None:
        autoload = _autoload_default()
    distributions: dict[str, tuple[str, str]] = {}
    if autoload:
        distributions = _load_entry_points(pm)
    for plugin in plugins:
        pm.register(plugin)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        prov = _provenance(pm, exc.plugin, distributions)
        raise PluginError(f"{prov}: {exc}") from None
    return pm, blocked, distributions


def _load_entry_points(pm: pluggy.PluginManager) -> dict[str, tuple[str, str]]:
    distributions: dict[str, tuple[str, str]] = {}
    seen: set[str] = set()
    for ep in md.entry_points(group=hookspecs.ENTRY_POINT_GROUP):
        if ep.name in seen or pm.is_blocked(ep.name) or pm.has_plugin(ep.name):
            continue
        seen.add(ep.name)
        dist = getattr(ep, "dist", None)
        dist_desc = f"'{dist.metadata['name']} {dist.version}'" if dist is not None else "(unknown)"
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginError(
                f"plugin {ep.name!r} from distribution {dist_desc} failed to import: {type(exc).__name__}: {exc} "
                f"(block it with BLT_BLOCK_PLUGINS={ep.name})"
            ) from exc
        try:
            pm.register(plugin, name=ep.name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginError(f"plugin {ep.name!r} from distribution {dist_desc} failed to register: {exc}") from exc
        distributions[ep.name] = (dist.metadata["name"], dist.version) if dist is not None else ("(unknown)", "-")
    return distributions


def make_registry(
    *,
    autoload: bool | None = None,
    block: Iterable[str] = (),
    plugins: Iterable[object] = (),
    builtins: Iterable[str] = BUILTIN_PLUGINS,
) -> Registry:
    """Builtins + installed entry-point plugins (unless autoload is off), validated and frozen.

    ``block``: plugin names to disable (also ``$BLT_BLOCK_PLUGINS``, comma separated).
    ``autoload``: load entry points (default on unless ``$BLT_DISABLE_PLUGIN_AUTOLOAD`` is set).
    ``plugins``: extra plugin objects (modules or instances with hookimpls), e.g. in tests.
    """
    pm, blocked, distributions = make_plugin_manager(autoload=autoload, block=block, plugins=plugins, builtins=builtins)
    return Registry.from_plugin_manager(pm, blocked, distributions)


def registry_for(data: Mapping[str, Any] | None) -> Registry:
    """Build the registry a config file asks for through its ``[plugins]`` table."""
    section = dict((data or {}).get("plugins") or {})
    unknown = set(section) - {"block", "autoload"}
    if unknown:
        raise ConfigError(f"$.plugins: unknown field(s) {sorted(unknown)}; allowed: block, autoload")
    block = section.get("block", [])
    if not isinstance(block, list) or not all(isinstance(b, str) for b in block):
        raise ConfigError("$.plugins.block: expected a list of plugin names")
    autoload = section.get("autoload")
    if autoload is not None and not isinstance(autoload, bool):
        raise ConfigError("$.plugins.autoload: expected true or false")
    return make_registry(block=block, autoload=autoload)


__all__ = ["BUILTIN_PLUGINS", "Provenance", "Registry", "make_registry", "registry_for", "FAMILY_OF_SECTION"]
