"""``results.json`` and ``results.md`` of an ablation, from the records of its finished runs.

``results.json`` is a list with one entry per variant, in file order::

    {"name", "bpb" (mean over seeds), "bpb_ci95" ([low, high], or null with one seed),
     "bpb_half_width", "n_seeds", "size", "budget",
     "seeds": [{"seed", "bpb", "lr", "train_flops", "steps", ..., "eval": {...}}, ...],
     "paired_diff": {"reference", "mean", "ci95", "half_width", "n", "per_seed": [{"seed", "diff"}]}
                    (variant minus reference on the same seeds; absent for the reference itself),
     "train_flops", "inference_flops_per_byte", "avg_patch_size", "params", "steps",
     "bytes_per_s", "wall_s" (means over seeds), "fingerprint" (the run's config fingerprint;
     with several seeds, a fingerprint of theirs),
     "eval": {"noise": {name: stats}, "noise_increase": {name: stats}, "chars": {task: {...}},
              "by_source": {source: stats}, "by_script": {script: stats}}   (with [eval]),
     "cells": [...], "frontier": {"points": [...], "slope", "intercept"}}   (with a [grid])

where ``stats`` is ``{"mean", "ci95", "half_width", "n"}``. A grid ablation has one cell per
(size, budget), each with the fields above; the variant's headline numbers are its best cell at
the largest budget (its compute-optimal size there). With a ``[grid] lr`` sweep a seed's result is
its best held-out BPB over the learning rates (chosen on the same held-out bytes it reports), and its
``lr`` is the chosen one; every run of the sweep, with its numbers, is under ``tried``. The frontier is, per budget, the size with the lowest mean BPB; its slope is the
least-squares fit of log BPB against log training FLOPs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blt.ablation.stats import frontier, loglog_slope, mean_ci, paired_difference
from blt.core.atomic import atomic_write_json, atomic_write_text
from blt.core.config import fingerprint

MEANS = ("train_flops", "inference_flops_per_byte", "avg_patch_size", "params", "steps", "bytes_per_s", "wall_s")
NOISES = ("antspeak", "drop", "random_case", "repeat", "upper_case")


def _stats(values: list[float]) -> dict[str, Any]:
    s = mean_ci(values)
    return {"mean": s["mean"], "ci95": s["ci95"], "half_width": s["half_width"], "n": s["n"]}


def _best_over_lr(records: list[dict[str, Any]]) -> dict[str, Any]:
    best = min(records, key=lambda r: r["bpb"])
    out = dict(best)
    if len(records) > 1 or best["lr"] is not None:
        out["tried"] = [{k: v for k, v in r.items() if k not in ("variant", "seed", "size", "budget", "configured_lr", "eval")}
                        for r in sorted(records, key=lambda r: r["lr"] or 0)]
    out["lr"] = best["lr"] if best["lr"] is not None else best["configured_lr"]
    return out


def _eval_stats(seeds: list[dict[str, Any]]) -> dict[str, Any] | None:
    evals = [s["eval"] for s in seeds if s.get("eval")]
    if not evals:
        return None
    out: dict[str, Any] = {}
    if all("noise" in e for e in evals):
        keys = [k for k in evals[0]["noise"] if all(k in e["noise"] for e in evals)]
        out["noise"] = {k: _stats([e["noise"][k] for e in evals]) for k in keys}
        out["noise_increase"] = {k: _stats([e["noise"][k] - e["noise"]["clean"] for e in evals])
                                 for k in keys if k != "clean" and "clean" in keys}
    if all("chars" in e for e in evals):
        tasks = [t for t in evals[0]["chars"] if all(t in e["chars"] for e in evals)]
        out["chars"] = {t: {"accuracy": _stats([e["chars"][t]["accuracy"] for e in evals]),
                            "chance": evals[0]["chars"][t]["chance"], "n": evals[0]["chars"][t]["n"]} for t in tasks}
    if all("breakdown" in e for e in evals):
        for part in ("by_source", "by_script"):
            names = [n for n in evals[0]["breakdown"].get(part, {}) if all(n in e["breakdown"].get(part, {}) for e in evals)]
            out[part] = {n: {**_stats([e["breakdown"][part][n]["bpb"] for e in evals]),
                             "bytes": evals[0]["breakdown"][part][n]["bytes"]} for n in names}
    return out


def _cell(seeds: list[dict[str, Any]]) -> dict[str, Any]:
    s = _stats([r["bpb"] for r in seeds])
    cell = {"size": seeds[0]["size"], "budget": seeds[0]["budget"], "bpb": s["mean"], "bpb_ci95": s["ci95"],
            "bpb_half_width": s["half_width"], "n_seeds": s["n"],
            "seeds": [{k: v for k, v in r.items() if k not in ("variant", "size", "budget", "configured_lr")} for r in seeds]}
    cell.update({k: sum(r[k] for r in seeds) / len(seeds) for k in MEANS})
    # the run's config fingerprint; with several seeds, one over theirs (each seed's is under seeds)
    cell["fingerprint"] = seeds[0]["fingerprint"] if len(seeds) == 1 else fingerprint(sorted(r["fingerprint"] for r in seeds))
    ev = _eval_stats(seeds)
    if ev is not None:
        cell["eval"] = ev
    return cell


def _paired(cell: dict[str, Any], ref: dict[str, Any] | None, reference: str) -> dict[str, Any] | None:
    if ref is None:
        return None
    d = paired_difference({s["seed"]: s["bpb"] for s in cell["seeds"]}, {s["seed"]: s["bpb"] for s in ref["seeds"]})
    if d is None:
        return None
    return {"reference": reference, "mean": d["mean"], "ci95": d["ci95"], "half_width": d["half_width"], "n": d["n"],
            "per_seed": [{"seed": k, "diff": v} for k, v in d["per_seed"].items()]}


def summarize(ablation: Any, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``results.json`` entries from the finished runs' records (any subset of the runs)."""
    by_point: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        by_point.setdefault((r["variant"], r["size"], r["budget"], r["seed"]), []).append(r)
    cells: dict[tuple, dict[str, Any]] = {}
    for variant in ablation.variants:
        for size in ablation.sizes:
            for budget in ablation.budgets:
                seeds = [_best_over_lr(by_point[(variant, size, budget, s)]) for s in ablation.seeds
                         if (variant, size, budget, s) in by_point]
                if seeds:
                    cells[(variant, size, budget)] = _cell(seeds)
    grid = len(ablation.sizes) > 1 or len(ablation.budgets) > 1
    out = []
    for variant in ablation.variants:
        mine = [(key, c) for key, c in cells.items() if key[0] == variant]
        if not mine:
            continue
        for (_, size, budget), c in mine:
            if variant != ablation.reference:
                c["paired_diff"] = _paired(c, cells.get((ablation.reference, size, budget)), ablation.reference)
        top_budget = max((b for (_, _, b), _ in mine), key=lambda b: b or 0)
        head_key, head = min(((k, c) for k, c in mine if k[2] == top_budget), key=lambda kc: kc[1]["bpb"])
        entry = {"name": variant, **{k: v for k, v in head.items()}}
        if variant != ablation.reference:
            ref_cells = [(k, c) for k, c in cells.items() if k[0] == ablation.reference and k[2] == top_budget]
            ref_head = min(ref_cells, key=lambda kc: kc[1]["bpb"])[1] if ref_cells else None
            entry["paired_diff"] = _paired(head, ref_head, ablation.reference)
        if grid:
            entry["cells"] = [c for _, c in mine]
            points = frontier([(c["budget"] or 0.0, c["train_flops"], c["bpb"], c["size"]) for _, c in mine])
            fit = loglog_slope([(f, b) for f, b, _ in points])
            entry["frontier"] = {"points": [{"train_flops": f, "bpb": b, "size": s} for f, b, s in points],
                                 "slope": None if fit is None else fit["slope"],
                                 "intercept": None if fit is None else fit["intercept"]}
        out.append(entry)
    return out


def _pm(stats: dict[str, Any] | None, fmt: str = "{:.4f}", signed: bool = False) -> str:
    if not stats:
        return "—"
    mean = stats["mean"]
    text = ("{:+.4f}" if signed else fmt).format(mean)
    return text + (f" ± {stats['half_width']:.4f}" if stats.get("half_width") is not None else " (n=1)")


def _bpb(entry: dict[str, Any]) -> dict[str, Any]:
    return {"mean": entry["bpb"], "half_width": entry["bpb_half_width"]}


def main_table(ablation: Any, results: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The headline table (``results.md`` and ``blt ablate``'s printout): headers and rows."""
    sweep = ablation.lrs != [None]
    noise = [k for k in NOISES if any(k in (e.get("eval") or {}).get("noise_increase", {}) for e in results)]
    grid = any("frontier" in e for e in results)
    head = ["variant", "BPB", f"Δ vs {ablation.reference}", "seeds", *(["lr (per seed)"] if sweep else []),
            *(["size"] if grid else []), "train FLOPs", "infer FLOPs/byte", "avg patch", "params", "steps",
            "train bytes/s", "wall s", *(f"+{k}" for k in noise), *(["frontier slope"] if grid else [])]
    rows = []
    for e in results:
        diff = e.get("paired_diff")
        inc = (e.get("eval") or {}).get("noise_increase", {})
        slope = (e.get("frontier") or {}).get("slope")
        rows.append([e["name"], _pm(_bpb(e)), "reference" if e["name"] == ablation.reference else _pm(diff, signed=True),
                     str(e["n_seeds"]), *([", ".join(f"{s['lr']:g}" for s in e["seeds"])] if sweep else []),
                     *([str(e["size"] or "—")] if grid else []),
                     f"{e['train_flops']:.3g}", f"{e['inference_flops_per_byte']:.3g}", f"{e['avg_patch_size']:.2f}",
                     f"{e['params']:,.0f}", f"{e['steps']:.0f}", f"{e['bytes_per_s']:,.0f}", f"{e['wall_s']:.1f}",
                     *(_pm(inc.get(k), signed=True) for k in noise),
                     *(["—" if slope is None else f"{slope:.4f}"] if grid else [])])
    return head, rows


def results_markdown(ablation: Any, results: list[dict[str, Any]]) -> str:
    seeds = ", ".join(str(s) for s in ablation.seeds)
    n = len(ablation.seeds)
    lines = ["# Ablation results (held-out bits per byte at matched training FLOPs)", "",
             f"Seeds: {seeds} (n = {n}). BPB is the mean over seeds ± the half-width of its 95% Student-t interval"
             + ("; with one seed there is no interval (n=1)." if n == 1 else ".")
             + f" Δ is the paired difference to `{ablation.reference}` (variant − reference, seed by seed), mean ± 95% half-width.",
             ""]
    head, rows = main_table(ablation, results)
    lines += ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "## Per seed", "", "| variant | seed | lr | BPB | Δ vs reference | steps | wall s | fingerprint |",
              "|---|---:|---:|---:|---:|---:|---:|---|"]
    for e in results:
        per = {d["seed"]: d["diff"] for d in (e.get("paired_diff") or {}).get("per_seed", [])}
        for s in e["seeds"]:
            d = per.get(s["seed"])
            lines.append(f"| {e['name']} | {s['seed']} | {s['lr']:g} | {s['bpb']:.4f} | "
                         f"{'—' if d is None else f'{d:+.4f}'} | {s['steps']} | {s['wall_s']:.1f} | {s['fingerprint']} |")
    lines += _grid_lines(results)
    lines += _eval_lines(results)
    return "\n".join(lines) + "\n"


def _grid_lines(results: list[dict[str, Any]]) -> list[str]:
    if not any("cells" in e for e in results):
        return []
    lines = ["", "## Grid", "", "| variant | size | budget | train FLOPs | BPB | steps | params |", "|---|---|---:|---:|---:|---:|---:|"]
    for e in results:
        for c in e.get("cells", []):
            lines.append(f"| {e['name']} | {c['size'] or '—'} | {c['budget'] or 0:.3g} | {c['train_flops']:.3g} | "
                         f"{_pm(_bpb(c))} | {c['steps']:.0f} | {c['params']:,.0f} |")
    lines += ["", "## Compute-optimal frontier (best size per budget; slope of log BPB vs log training FLOPs)", "",
              "| variant | frontier (FLOPs: BPB, size) | slope |", "|---|---|---:|"]
    for e in results:
        f = e.get("frontier")
        if f is None:
            continue
        pts = "; ".join(f"{p['train_flops']:.3g}: {p['bpb']:.4f} ({p['size'] or '—'})" for p in f["points"])
        slope = "—" if f["slope"] is None else f"{f['slope']:.4f}"
        lines.append(f"| {e['name']} | {pts} | {slope} |")
    return lines


def _eval_lines(results: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    with_eval = [e for e in results if e.get("eval")]
    noisy = [e for e in with_eval if "noise" in e["eval"]]
    if noisy:
        keys = [k for k in NOISES if k in noisy[0]["eval"]["noise_increase"]]
        lines += ["", "## Noise robustness (BPB on clean text; increase in BPB under each noise, mean ± 95% half-width)", "",
                  "| variant | clean | " + " | ".join(f"+{k}" for k in keys) + " |", "|---|" + "---:|" * (len(keys) + 1)]
        for e in noisy:
            ev = e["eval"]
            lines.append(f"| {e['name']} | {_pm(ev['noise'].get('clean'))} | "
                         + " | ".join(_pm(ev["noise_increase"].get(k), signed=True) for k in keys) + " |")
    for part, title in (("by_source", "source"), ("by_script", "script")):
        rows = [e for e in with_eval if part in e["eval"]]
        if not rows:
            continue
        names = list(dict.fromkeys(n for e in rows for n in e["eval"][part]))
        lines += ["", f"## BPB by {title}", "", "| variant | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for e in rows:
            lines.append(f"| {e['name']} | " + " | ".join(_pm(e["eval"][part].get(n)) for n in names) + " |")
    chars = [e for e in with_eval if "chars" in e["eval"]]
    if chars:
        tasks = list(chars[0]["eval"]["chars"])
        lines += ["", "## Character-level tasks (accuracy; chance in the header)", "",
                  "| variant | " + " | ".join(f"{t} ({chars[0]['eval']['chars'][t]['chance']:.2f})" for t in tasks) + " |",
                  "|---|" + "---:|" * len(tasks)]
        for e in chars:
            lines.append(f"| {e['name']} | " + " | ".join(_pm(e["eval"]["chars"][t]["accuracy"], "{:.3f}") for t in tasks) + " |")
    return lines


def write_results(out: Path, ablation: Any, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Write ``results.json``, ``results.md`` and the plots atomically; returns the results."""
    from blt.ablation.plots import plot_bpb_vs_flops, plot_robustness

    results = summarize(ablation, records)
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "results.md", results_markdown(ablation, results))
    plot_bpb_vs_flops(out, ablation, results)
    if any(e.get("eval") for e in results):
        plot_robustness(out, results)
    return results


__all__ = ["main_table", "results_markdown", "summarize", "write_results"]
