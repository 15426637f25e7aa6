"""Error types. Every error a user can cause is a `BltError` whose message is one clear line."""

from __future__ import annotations


class BltError(Exception):
    """Base class: the CLI prints ``error: <message>`` and exits non-zero for these."""


class ConfigError(BltError, ValueError):
    """A config value, field or kind is wrong. The message names the field path (``$.patcher.kind``)."""


class PluginError(BltError):
    """A plugin failed to load, register or validate. The message names the plugin and distribution."""


class UnavailableError(BltError):
    """A component cannot run here (missing package, no GPU, unsupported mode); the message says why."""


class InputError(BltError, ValueError):
    """Bad runtime input (tokens, lengths, files)."""
