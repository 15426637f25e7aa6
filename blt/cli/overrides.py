"""``--set KEY=VALUE`` parsing shared by the commands that take config overrides."""

from __future__ import annotations

import tomllib
from typing import Any

from blt.core.errors import ConfigError


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a": {"b": 1}, "c": "x"}``; values parse as TOML values
    (numbers, booleans, arrays, quoted strings), anything else is taken as a plain string."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set patch_size=6 or --set train.steps=100")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is set both as a value and as a table")
        node[parts[-1]] = value
    return out
