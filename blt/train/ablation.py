"""Matched-compute ablations: a base experiment plus named variants, each trained to one budget.

File format (TOML)::

    [base.model] ...            # the base experiment, any sections
    [budget]
    train_flops = 2e12          # every variant trains to this many training FLOPs (3 x forward)
    [variants.strided4]
    patcher = { kind = "strided", patch_size = 4 }   # field overrides (a new kind replaces the table)

Every variant is resolved and decoded before anything trains, so a bad variant fails first. Its
steps come from the budget (``floor(budget / FLOPs per step)``), not from a shared step count.
Each variant trains in ``DIR/variants/NAME`` (resumable); a finished variant is recognised by its
``final.json`` and its resolved-config fingerprint and is never retrained or overwritten.
``results.json`` / ``results.md`` / ``bpb_vs_flops.png`` are rewritten atomically after each
variant, from the finished variants' records.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import msgspec

from blt.core.atomic import atomic_path, atomic_write_json, atomic_write_text
from blt.core.config import read_config_file
from blt.core.errors import BltError, ConfigError
from blt.experiment import load_experiment, with_overrides
from blt.train.metrics import read_metrics
from blt.train.run_lock import hold


class AblationError(BltError):
    """An ablation directory holds a finished result that this file would overwrite."""


def default_ablation_path() -> Path:
    import importlib.resources

    return Path(str(importlib.resources.files("blt") / "configs" / "ablations" / "default.toml"))


def resolve_variants(path: str | Path) -> list[tuple[str, Any, Any]]:
    """``[(name, experiment config, registry)]`` for each variant (or the base alone, named ``base``)."""
    data = read_config_file(path)
    unknown = set(data) - {"base", "budget", "variants"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level table(s) {sorted(unknown)}; an ablation has [base], [budget], [variants]")
    base = dict(data.get("base") or {})
    if "budget" in data:
        base["budget"] = data["budget"]
    if not (base.get("budget") or {}).get("train_flops"):
        raise ConfigError(f"{path}: $.budget.train_flops: set the training-FLOPs budget every variant trains to")
    if (base.get("train") or {}).get("steps") is not None:
        raise ConfigError(f"{path}: $.base.train.steps: variants train to [budget] train_flops; remove the fixed step count")
    variants = dict(data.get("variants") or {}) or {"base": {}}  # the base is the template; alone, it runs as "base"
    out = []
    for name, overrides in variants.items():
        if not isinstance(overrides, dict):
            raise ConfigError(f"{path}: $.variants.{name}: expected a table of field overrides")
        try:
            config, registry = load_experiment(with_overrides(base, overrides))
        except ConfigError as exc:
            raise ConfigError(f"{path}: variant {name!r}: {exc}") from None
        out.append((name, config, registry))
    return out


def variant_fingerprint(config: Any) -> str:
    from blt.train.setup import config_fingerprint

    return config_fingerprint(config)


def record_for(name: str, fp: str, final: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "fingerprint": fp, "bpb": final["eval_bpb"], "train_flops": final["train_flops"],
            "inference_flops_per_byte": final["inference_flops_per_byte"], "avg_patch_size": final["avg_patch_size"],
            "params": final["params"], "bytes_per_s": final["bytes_per_s"], "wall_s": final["wall_s"],
            "steps": final["steps"], "train_flops_per_byte": final["train_flops_per_byte"]}


def run_ablation(path: str | Path, out: str | Path, *, on_variant=None) -> list[dict[str, Any]]:
    """Train every unfinished variant of ``path`` into ``out``; returns the records in file order.

    ``out`` is locked for the whole ablation (:mod:`blt.train.run_lock`) and each variant's
    directory while it trains, so a second ``blt ablate`` or ``blt train`` into either is refused."""
    out = Path(out)
    variants = resolve_variants(path)
    with hold(out, is_main=os.environ.get("RANK", "0") == "0"):
        return _train_variants(variants, out, on_variant)


def _train_variants(variants: list[tuple[str, Any, Any]], out: Path, on_variant: Any) -> list[dict[str, Any]]:
    from blt.train.trainer import FINAL, train

    records: list[dict[str, Any]] = []
    for name, config, registry in variants:
        fp = variant_fingerprint(config)
        vdir = out / "variants" / name
        stamp = vdir / "variant.json"
        if stamp.is_file():
            recorded = json.loads(stamp.read_text(encoding="utf-8")).get("fingerprint")
            if recorded != fp:
                raise AblationError(f"{vdir} holds variant {name!r} trained with a different config (fingerprint {recorded}, "
                                    f"now {fp}); it is never overwritten: use another --out, or rename the variant")
        else:
            vdir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(stamp, {"name": name, "fingerprint": fp, "config": msgspec.to_builtins(config)})
        finished = (vdir / FINAL).is_file()
        if on_variant is not None:
            on_variant(name, "skip" if finished else "train")
        final = train(config, registry, out_dir=vdir, resume=True)
        records.append(record_for(name, fp, final))
        write_results(out, records)
    return records


def write_results(out: Path, records: list[dict[str, Any]]) -> None:
    atomic_write_json(out / "results.json", records)
    atomic_write_text(out / "results.md", results_markdown(records))
    plot_bpb_vs_flops(out, [r["name"] for r in records])


COLUMNS = [("name", "variant", "{}"), ("bpb", "BPB", "{:.4f}"), ("train_flops", "train FLOPs", "{:.3g}"),
           ("inference_flops_per_byte", "infer FLOPs/byte", "{:.3g}"), ("avg_patch_size", "avg patch", "{:.2f}"),
           ("params", "params", "{:,}"), ("steps", "steps", "{}"), ("bytes_per_s", "train bytes/s", "{:,.0f}"),
           ("wall_s", "wall s", "{:.1f}"), ("fingerprint", "fingerprint", "{}")]


def results_markdown(records: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    rule = "|" + "|".join("---" if key in ("name", "fingerprint") else "---:" for key, _, _ in COLUMNS) + "|"
    rows = ["| " + " | ".join(fmt.format(r[key]) for key, _, fmt in COLUMNS) + " |" for r in records]
    return "\n".join(["# Ablation results (held-out bits per byte at matched training FLOPs)", "", head, rule, *rows, ""])


def plot_bpb_vs_flops(out: Path, names: list[str]) -> None:
    """``bpb_vs_flops.png``: held-out BPB at each evaluation against training FLOPs, one line per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in names:
        rows = [r for r in read_metrics(out / "variants" / name / "metrics.jsonl") if r.get("kind") == "eval"]
        if rows:
            ax.plot([r["train_flops"] for r in rows], [r["eval_bpb"] for r in rows], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel("held-out bits per byte")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        with atomic_path(out / "bpb_vs_flops.png") as tmp:
            fig.savefig(tmp, dpi=120)
    finally:
        plt.close(fig)


__all__ = ["AblationError", "default_ablation_path", "resolve_variants", "run_ablation", "write_results"]
