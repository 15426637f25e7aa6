"""Config base structs and decoding with errors that name the field path.

Every component config is a msgspec Struct (frozen, forbid_unknown_fields, kw_only) tagged by
``kind``; a plugin's config subclasses one of the family bases with ``tag="its_kind"``.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import msgspec
from msgspec import Meta

from blt.core.errors import ConfigError

T = TypeVar("T")

PositiveInt = Annotated[int, Meta(ge=1)]


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every config struct."""


class ComponentConfig(Config, frozen=True, forbid_unknown_fields=True, kw_only=True, tag_field="kind"):
    """Base of a component config selected by its ``kind`` tag."""

    @property
    def kind(self) -> str:
        return type(self).__struct_config__.tag  # type: ignore[return-value]


class PatcherConfig(ComponentConfig, frozen=True, forbid_unknown_fields=True, kw_only=True, tag_field="kind"):
    """Fields every patcher accepts."""

    max_patch_length: PositiveInt | None = None


class EncoderConfig(ComponentConfig, frozen=True, forbid_unknown_fields=True, kw_only=True, tag_field="kind"):
    """Base of local encoder configs."""


class DecoderConfig(ComponentConfig, frozen=True, forbid_unknown_fields=True, kw_only=True, tag_field="kind"):
    """Base of local decoder configs."""


class ModelConfig(ComponentConfig, frozen=True, forbid_unknown_fields=True, kw_only=True, tag_field="kind"):
    """Base of whole-model configs (the ``[model]`` table: ``blt`` or a baseline)."""


class AttentionConfig(ComponentConfig, frozen=True, forbid_unknown_fields=True, kw_only=True, tag_field="kind"):
    """Base of attention backend configs."""


_AT_PATH = re.compile(r" - at `\$(?P<rest>[^`]*)`$")


def validation_message(exc: msgspec.MsgspecError, path: str) -> str:
    """Rewrite msgspec's ``... - at `$.x` `` into ``$.prefix.x: ...``."""
    text = str(exc)
    m = _AT_PATH.search(text)
    if m:
        return f"{path}{m.group('rest')}: {text[: m.start()]}"
    return f"{path}: {text}"


def suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"registered: {', '.join(sorted(options)) or '(none)'}{hint}"


def convert(data: Any, type_: type[T], path: str = "$") -> T:
    """``msgspec.convert`` with a ConfigError that names the field path."""
    try:
        return msgspec.convert(data, type_, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(validation_message(exc, path)) from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or JSON file into plain data; errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot parse: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{p}: the top level must be a table/object")
    return dict(data)


def fingerprint(config: Any) -> str:
    """A short stable hash of a config's canonical JSON."""
    import hashlib

    data = msgspec.json.encode(msgspec.to_builtins(config), order="sorted")
    return hashlib.sha256(data).hexdigest()[:16]
