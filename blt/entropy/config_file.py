"""Write patcher settings into a TOML config's ``[patcher]`` table, atomically, keeping the rest intact.

The standard library reads TOML but cannot write it, so the table is edited as text: the keys we set
are replaced (or inserted after the header), other lines and comments are kept, and the result is
parsed again before it atomically replaces the file.
"""

from __future__ import annotations

import json
import math
import pathlib
import re
import tomllib
from typing import Any

from blt.core.atomic import atomic_write_text
from blt.core.errors import ConfigError

_HEADER = re.compile(r"^\s*\[\s*patcher\s*\]\s*(#.*)?$")
_ANY_HEADER = re.compile(r"^\s*\[")


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    raise ConfigError(f"cannot write a {type(value).__name__} into a TOML config")


def update_patcher_table(path: str | pathlib.Path, values: dict[str, Any], *, remove: tuple[str, ...] = ()) -> None:
    """Set ``values`` (and drop ``remove``) in ``[patcher]`` of ``path`` (created if missing).

    If the file's patcher has another ``kind`` than ``values["kind"]``, the table is replaced.
    """
    path = pathlib.Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: cannot parse TOML ({exc}); fix it before writing a threshold into it") from None
    lines = text.splitlines()
    header = next((i for i, line in enumerate(lines) if _HEADER.match(line)), None)
    if header is None and "patcher" in data:
        raise ConfigError(f"{path}: the patcher is not a [patcher] table (inline or dotted keys); rewrite it as a [patcher] table")
    new_lines = [f"{k} = {toml_value(v)}" for k, v in values.items()]
    if header is None:
        lines += ([""] if lines and lines[-1].strip() else []) + ["[patcher]", *new_lines]
    else:
        end = next((j for j in range(header + 1, len(lines)) if _ANY_HEADER.match(lines[j])), len(lines))
        old_kind = data.get("patcher", {}).get("kind")
        drop = set(values) | set(remove)
        if "kind" in values and old_kind is not None and old_kind != values["kind"]:
            body: list[str] = []  # another kind: its fields would not fit
        else:
            body = [ln for ln in lines[header + 1 : end] if ln.split("=", 1)[0].strip() not in drop]
        lines[header + 1 : end] = new_lines + body
    out = "\n".join(lines) + "\n"
    tomllib.loads(out)  # what we write must parse
    atomic_write_text(path, out)
