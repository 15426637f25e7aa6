"""blt-lab: the Byte Latent Transformer with dynamic patching, built as a registry of plugins.

Heavy pieces are imported lazily so ``import blt`` stays cheap and free of side effects.
"""

from __future__ import annotations

from typing import Any

from blt.core.errors import BltError, ConfigError, InputError, PluginError, UnavailableError
from blt.core.hookspecs import hookimpl
from blt.core.registry import Registry, make_registry

__version__ = "0.1.0"

_LAZY = {
    "build_model": ("blt.experiment", "build_model"),
    "load_experiment": ("blt.experiment", "load_experiment"),
    "load": ("blt.generate.checkpoint", "load"),
    "tokens": ("blt.tokens", None),
    "testing": ("blt.testing", None),
    "interop": ("blt.interop", None),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        module = importlib.import_module(module_name)
        return module if attr is None else getattr(module, attr)
    raise AttributeError(f"module 'blt' has no attribute {name!r}")


__all__ = [
    "BltError",
    "ConfigError",
    "InputError",
    "PluginError",
    "Registry",
    "UnavailableError",
    "build_model",
    "hookimpl",
    "load",
    "make_registry",
]
