"""Expose a plugin to ``importlib.metadata`` without installing it: a generated ``.dist-info``.

``fake_distribution(root, "blt-x", "0.3", {"x": "blt_x.plugin"}, modules={"blt_x/plugin.py": src})``
writes ``root/blt_x-0.3.dist-info/{METADATA,entry_points.txt}`` (plus any module files) so that,
with ``root`` on ``sys.path``, ``entry_points(group="blt.plugins")`` finds the plugin and names
its distribution. Use with ``monkeypatch.syspath_prepend(root)`` (which also invalidates the
import caches) so the distribution disappears after the test.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from pathlib import Path

from blt.core.hookspecs import ENTRY_POINT_GROUP


def fake_distribution(root: str | Path, name: str, version: str, entry_points: Mapping[str, str],
                      modules: Mapping[str, str] | None = None, group: str = ENTRY_POINT_GROUP) -> Path:
    """Write a minimal distribution under ``root``; returns its ``.dist-info`` directory.

    ``entry_points``: ``{plugin name: "module.path"}`` in ``group``. ``modules``: relative file
    path -> source text, written under ``root``."""
    root = Path(root)
    normalized = re.sub(r"[-_.]+", "_", name)
    info = root / f"{normalized}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    lines = [f"[{group}]", *(f"{ep} = {target}" for ep, target in entry_points.items()), ""]
    (info / "entry_points.txt").write_text("\n".join(lines), encoding="utf-8")
    for rel, source in (modules or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    importlib.invalidate_caches()
    return info
