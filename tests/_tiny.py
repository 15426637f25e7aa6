"""Tiny experiment configs shared by the training tests (a few seconds per run on 2 CPU cores)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

TINY: dict[str, Any] = {
    "model": {"d_local": 32, "d_global": 64, "global_layers": 2, "global_heads": 4, "global_ffn": 128},
    "patcher": {"kind": "space", "max_patch_length": 8},
    "encoder": {"kind": "cross_attention", "layers": 1, "heads": 2, "ffn_dim": 64, "window": 32,
                "hash_sizes": [3, 4], "hash_buckets": 512, "k": 2, "cross_heads": 2},
    "decoder": {"kind": "cross_attention", "layers": 1, "heads": 2, "ffn_dim": 64, "window": 32, "k": 2, "cross_heads": 2},
    "attention": {"kind": "sdpa"},
    "data": {"source": "builtin", "builtin_sources": ["kjv"], "max_documents": 40, "seq_len": 64, "batch_size": 4},
    "train": {"lr": 3e-3, "warmup": 2, "steps": 12, "eval_every": 6, "eval_bytes": 1024, "checkpoint_every": 4},
    "run": {"log_every": 1, "progress": False},
}


def small_blt(encoder: str, decoder: str, *, block_documents: bool = True, encoder_window: int = 5) -> dict[str, Any]:
    """A very small BLT (eager attention) whose local windows and cross windows are shorter than
    the test rows, so causality tests cross window, patch and document boundaries."""
    enc = {"kind": encoder, "heads": 2, "window": encoder_window, "hash_buckets": 61, "hash_sizes": [2, 3], "layers": 2}
    if encoder == "cross_attention":
        enc.update(cross_heads=2, k=2, cross_all_layers=True, cross_window=2)
    dec = {"kind": decoder, "heads": 2, "layers": 2, "window": 7}
    if decoder == "cross_attention":
        dec.update(cross_heads=2, k=2, cross_window=2)
    return {"model": {"d_local": 16, "d_global": 32, "global_layers": 2, "global_heads": 2, "block_documents": block_documents},
            "encoder": enc, "decoder": dec, "attention": {"kind": "eager"}}


def tiny(**sections: dict[str, Any]) -> dict[str, Any]:
    """``TINY`` with per-section field updates, e.g. ``tiny(train={"steps": 3})``."""
    out = copy.deepcopy(TINY)
    for name, fields in sections.items():
        if name in ("model", "patcher", "encoder", "decoder", "attention") and "kind" in fields:
            out[name] = dict(fields)
        else:
            out.setdefault(name, {}).update(fields)
    return out


def write_toml(path: Path, data: dict[str, Any]) -> Path:
    """Write plain nested data as TOML (tables of scalars and arrays only)."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    lines: list[str] = []

    def table(prefix: str, data: dict[str, Any]) -> None:
        scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
        if prefix and scalars:
            lines.append(f"[{prefix}]")
        lines.extend(f"{k} = {value(v)}" for k, v in scalars.items())
        for k, v in data.items():
            if isinstance(v, dict):
                table(f"{prefix}.{k}" if prefix else k, v)

    table("", data)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_env(cache: Path, **extra: str) -> dict[str, str]:
    """Environment for a subprocess run: this checkout importable, the test cache, few threads."""
    import os

    repo = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env.update({"PYTHONPATH": repo + os.pathsep + env.get("PYTHONPATH", ""), "BLT_CACHE_DIR": str(cache),
                "OMP_NUM_THREADS": "1", "BLT_DISABLE_PLUGIN_AUTOLOAD": "1"})
    env.update(extra)
    return env
