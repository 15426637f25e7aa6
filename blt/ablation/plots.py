"""The ablation's figures, written atomically: ``bpb_vs_flops.png`` and ``robustness.png``.

Without a grid, ``bpb_vs_flops.png`` draws each variant's held-out BPB at every evaluation
against training FLOPs: the mean over seeds with a 95% band (evaluation points are the same steps
in every seed: the seed changes neither the step count nor the evaluation schedule). With a grid,
it draws each variant's final BPB per size against training FLOPs (95% error bars over seeds) and
its compute-optimal frontier, labelled with the fitted slope. ``robustness.png`` draws grouped
bars with 95% error bars: BPB on clean and noised text per variant, BPB by source, and
character-task accuracy, for whichever of them the ablation evaluated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blt.ablation.stats import mean_ci
from blt.core.atomic import atomic_path
from blt.train.metrics import read_metrics


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    plt = _pyplot()
    try:
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)


def eval_band(run_dirs: list[Path]) -> tuple[list[float], list[float], list[float], list[float]]:
    """``(flops, mean, low, high)`` of held-out BPB at the evaluation steps every run has
    (``low == high == mean`` with one run)."""
    per_run = []
    for d in run_dirs:
        rows = [r for r in read_metrics(d / "metrics.jsonl") if r.get("kind") == "eval"]
        per_run.append({r["step"]: r for r in rows})
    if not per_run:
        return [], [], [], []
    steps = sorted(set.intersection(*(set(p) for p in per_run)))
    flops, mean, low, high = [], [], [], []
    for step in steps:
        s = mean_ci([p[step]["eval_bpb"] for p in per_run])
        flops.append(per_run[0][step]["train_flops"])
        mean.append(s["mean"])
        lo, hi = s["ci95"] if s["ci95"] is not None else (s["mean"], s["mean"])
        low.append(lo)
        high.append(hi)
    return flops, mean, low, high


def plot_bpb_vs_flops(out: Path, ablation: Any, results: list[dict[str, Any]]) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    grid = len(ablation.sizes) > 1 or len(ablation.budgets) > 1
    for i, entry in enumerate(results):
        color = colors[i % len(colors)]
        if not grid:
            flops, mean, low, high = eval_band([out / s["dir"] for s in entry["seeds"]])
            if flops:
                ax.plot(flops, mean, marker="o", color=color, label=f"{entry['name']} (n={entry['n_seeds']})")
                ax.fill_between(flops, low, high, color=color, alpha=0.2, linewidth=0)
            continue
        styles = ["-", "--", ":", "-."]
        for j, size in enumerate(ablation.sizes):
            cells = sorted((c for c in entry["cells"] if c["size"] == size), key=lambda c: c["train_flops"])
            if not cells:
                continue
            err = [c["bpb_half_width"] or 0.0 for c in cells]
            ax.errorbar([c["train_flops"] for c in cells], [c["bpb"] for c in cells], yerr=err, color=color,
                        linestyle=styles[j % len(styles)], marker="o", markersize=3, linewidth=0.8, alpha=0.6,
                        capsize=2, label=f"{entry['name']} {size}" if size else entry["name"])
        front = entry["frontier"]["points"]
        slope = entry["frontier"]["slope"]
        ax.plot([p["train_flops"] for p in front], [p["bpb"] for p in front], color=color, linewidth=2.5,
                label=f"{entry['name']} frontier" + (f" (slope {slope:.3f})" if slope is not None else ""))
    ax.set_xscale("log")
    if grid:
        from matplotlib.ticker import FormatStrFormatter

        ax.set_yscale("log")  # BPB spans less than a decade: plain labels on every tick
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.2f"))
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%.2f"))
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel("held-out bits per byte")
    ax.set_title("mean over seeds, 95% " + ("error bars; thick: compute-optimal frontier" if grid else "bands"), fontsize=9)
    ax.grid(True, alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    _save(fig, out / "bpb_vs_flops.png")


def _bars(ax: Any, groups: list[str], results: list[dict[str, Any]], value: Any, ylabel: str) -> None:
    width = 0.8 / max(1, len(results))
    for i, entry in enumerate(results):
        stats = [value(entry, g) for g in groups]
        xs = [k + (i - (len(results) - 1) / 2) * width for k in range(len(groups))]
        ax.bar(xs, [s["mean"] if s else 0.0 for s in stats], width,
               yerr=[(s["half_width"] or 0.0) if s else 0.0 for s in stats], capsize=2, label=entry["name"])
    ax.set_xticks(range(len(groups)), groups, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)


def plot_robustness(out: Path, results: list[dict[str, Any]]) -> None:
    """``robustness.png``: one panel per evaluated family (noise, source, chars)."""
    plt = _pyplot()
    rows = [e for e in results if e.get("eval")]
    panels = []
    if any("noise" in e["eval"] for e in rows):
        noisy = [e for e in rows if "noise" in e["eval"]]
        keys = list(noisy[0]["eval"]["noise"])
        panels.append((keys, noisy, lambda e, k: e["eval"]["noise"].get(k), "BPB (clean and noised)"))
    if any("by_source" in e["eval"] for e in rows):
        src = [e for e in rows if "by_source" in e["eval"]]
        names = list(dict.fromkeys(n for e in src for n in e["eval"]["by_source"]))
        panels.append((names, src, lambda e, k: e["eval"]["by_source"].get(k), "BPB by source"))
    if any("chars" in e["eval"] for e in rows):
        ch = [e for e in rows if "chars" in e["eval"]]
        tasks = list(ch[0]["eval"]["chars"])
        panels.append((tasks, ch, lambda e, k: (e["eval"]["chars"].get(k) or {}).get("accuracy"), "accuracy (chars)"))
    if not panels:
        return
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 3.2 * len(panels)), squeeze=False)
    for ax, (groups, entries, value, label) in zip(axes[:, 0], panels):
        _bars(ax, groups, entries, value, label)
        if label.startswith("accuracy"):
            chance = [entries[0]["eval"]["chars"][t]["chance"] for t in groups]
            ax.scatter(range(len(groups)), chance, marker="_", s=300, color="black", zorder=3, label="chance")
            ax.set_ylim(0, 1)
    axes[0, 0].legend(fontsize=7, ncol=min(4, len(rows)))
    axes[0, 0].set_title("mean over seeds, 95% error bars", fontsize=9)
    _save(fig, out / "robustness.png")


__all__ = ["eval_band", "plot_bpb_vs_flops", "plot_robustness"]
