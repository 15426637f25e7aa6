"""An ablation file resolved to the list of runs it stands for, before anything trains.

File format (TOML)::

    [base.model] ...            # the base experiment, any sections but [budget]
    [budget]
    train_flops = 2e12          # every run trains to this many training FLOPs (3 x forward)
    seeds = [0, 1, 2]           # each variant once per seed: train.seed = data.seed = seed
    reference = "strided4"      # paired differences against this variant (default: the first)
    [grid]                      # optional; every combination of the lists below
    train_flops = [5e11, 1.5e12]  # budgets (replaces [budget] train_flops)
    lr = [1e-3, 3e-3]           # learning-rate sweep: per variant and seed the best held-out BPB wins
    [grid.sizes.small]          # named sizes: overrides applied on top of each variant
    model = { d_global = 64 }
    [eval]                      # optional: after each run, on its held-out documents
    suites = ["noise"]          # blt.evaluation.suites.run_suite names
    breakdown = true            # BPB by source and by script
    max_bytes = 16384           # cap on the evaluated bytes
    [variants.strided4]
    patcher = { kind = "strided", patch_size = 4 }   # field overrides (a new kind replaces the table)

A run is one (variant, seed, size, budget, lr); each is resolved and decoded here, so a bad
variant, size or suite fails before anything trains. Only the seed changes between the seeds of a
cell: the held-out split, and so the evaluation bytes, do not depend on it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import attrs
from msgspec import Meta

from blt.core.config import Config, PositiveInt, convert, read_config_file, suggest
from blt.core.errors import ConfigError
from blt.core.registry import registry_for
from blt.experiment import load_experiment, with_overrides

TOP_LEVEL = ("base", "budget", "grid", "eval", "variants")
PositiveFloat = Annotated[float, Meta(gt=0)]


class AblationBudget(Config):
    """``[budget]`` of an ablation file (``train_flops`` goes to every run's experiment budget)."""

    train_flops: PositiveFloat | None = None
    seeds: Annotated[list[int], Meta(min_length=1)] | None = None
    reference: str | None = None


class GridConfig(Config):
    """``[grid]``: budgets, named sizes and learning rates; runs are their product."""

    train_flops: Annotated[list[PositiveFloat], Meta(min_length=1)] | None = None
    lr: Annotated[list[PositiveFloat], Meta(min_length=1)] | None = None
    sizes: dict[str, dict[str, Any]] | None = None


class EvalConfig(Config):
    """``[eval]``: suites and the BPB breakdown computed on each finished run."""

    suites: list[str] = []
    breakdown: bool = True
    max_bytes: PositiveInt | None = None


@attrs.frozen
class RunSpec:
    """One training run of an ablation. ``cell``: ``(variant, size, budget)``, the unit over which
    seeds are aggregated; ``lr`` is ``None`` when there is no sweep."""

    variant: str
    seed: int
    size: str | None
    budget: float | None
    lr: float | None
    data: dict[str, Any] = attrs.field(repr=False)   # the experiment as plain data (workers decode it again)
    config: Any = attrs.field(repr=False, eq=False)
    registry: Any = attrs.field(repr=False, eq=False)

    @property
    def cell(self) -> tuple[str, str | None, float | None]:
        return (self.variant, self.size, self.budget)

    @property
    def rel_dir(self) -> str:
        """``runs/<variant>/seed<k>[/<size>-flops<budget>-lr<lr>]`` (the grid parts that exist)."""
        point = [p for p in (self.size, None if self.budget is None else f"flops{self.budget:.3g}",
                             None if self.lr is None else f"lr{self.lr:g}") if p]
        return "/".join(["runs", self.variant, f"seed{self.seed}", *(["-".join(point)] if point else [])])

    @property
    def label(self) -> str:
        extra = [p for p in (self.size, None if self.budget is None else f"{self.budget:.3g} FLOPs",
                             None if self.lr is None else f"lr {self.lr:g}") if p]
        return f"{self.variant} seed {self.seed}" + (f" ({', '.join(extra)})" if extra else "")


@attrs.frozen
class Ablation:
    path: str
    runs: list[RunSpec]
    variants: list[str]
    seeds: list[int]
    reference: str
    sizes: list[str | None]
    budgets: list[float | None]
    lrs: list[float | None]
    eval: EvalConfig | None
    seeds_given: bool   # whether seeds were set (else each run keeps its configured seeds)


def _check_suites(where: str, suites: list[str]) -> None:
    if not suites:
        return
    try:
        from blt.evaluation.suites import SUITES
    except ImportError as exc:
        raise ConfigError(f"{where}.eval.suites: the evaluation suites are unavailable ({exc})") from None
    for name in suites:
        if name not in SUITES:
            raise ConfigError(f"{where}.eval.suites: unknown suite {name!r}; {suggest(name, list(SUITES))}")


def resolve_ablation(path: str | Path, *, seeds: list[int] | None = None) -> Ablation:
    """Read and resolve ``path``; ``seeds`` (``--seeds``) replaces ``[budget] seeds``."""
    where = str(path)
    data = read_config_file(path)
    unknown = set(data) - set(TOP_LEVEL)
    if unknown:
        raise ConfigError(f"{where}: unknown top-level table(s) {sorted(unknown)}; an ablation has "
                          "[base], [budget], [grid], [eval], [variants]")
    budget = convert(data.get("budget") or {}, AblationBudget, f"{where}: $.budget")
    grid = convert(data.get("grid") or {}, GridConfig, f"{where}: $.grid")
    ev = convert(data["eval"], EvalConfig, f"{where}: $.eval") if "eval" in data else None
    base = dict(data.get("base") or {})
    if "budget" in base:
        raise ConfigError(f"{where}: $.base.budget: write the budget as the top-level [budget] table")
    if (base.get("train") or {}).get("steps") is not None:
        raise ConfigError(f"{where}: $.base.train.steps: runs train to [budget] train_flops; remove the fixed step count")
    budgets: list[float | None] = list(grid.train_flops) if grid.train_flops else [None]
    if grid.train_flops is None and budget.train_flops is None:
        raise ConfigError(f"{where}: $.budget.train_flops: set the training-FLOPs budget every variant trains to "
                          "(or [grid] train_flops)")
    if grid.train_flops is not None and budget.train_flops is not None:
        raise ConfigError(f"{where}: $.budget.train_flops: [grid] train_flops sets the budgets; remove one of the two")
    if len(set(budgets)) != len(budgets):
        raise ConfigError(f"{where}: $.grid.train_flops: repeated budget")
    lrs: list[float | None] = list(grid.lr) if grid.lr else [None]
    if len(set(lrs)) != len(lrs):
        raise ConfigError(f"{where}: $.grid.lr: repeated learning rate")
    sizes_table = grid.sizes or {}
    if grid.sizes is not None and not sizes_table:
        raise ConfigError(f"{where}: $.grid.sizes: name at least one size ([grid.sizes.NAME])")
    for name, overrides in sizes_table.items():
        if not isinstance(overrides, dict):
            raise ConfigError(f"{where}: $.grid.sizes.{name}: expected a table of field overrides")
    sizes: list[str | None] = list(sizes_table) or [None]
    chosen = seeds if seeds is not None else budget.seeds
    if chosen is not None and len(set(chosen)) != len(chosen):
        raise ConfigError(f"{where}: seeds {chosen}: a seed is repeated")
    variants = dict(data.get("variants") or {}) or {"base": {}}  # the base is the template; alone, it runs as "base"
    for name, overrides in variants.items():
        if not isinstance(overrides, dict):
            raise ConfigError(f"{where}: $.variants.{name}: expected a table of field overrides")
        if "/" in name or name.startswith("."):
            raise ConfigError(f"{where}: $.variants.{name}: a variant name is a directory name (no '/', no leading '.')")
    reference = budget.reference or next(iter(variants))
    if reference not in variants:
        raise ConfigError(f"{where}: $.budget.reference: no variant {reference!r}; {suggest(reference, list(variants))}")
    if ev is not None:
        _check_suites(f"{where}: $", ev.suites)

    runs: list[RunSpec] = []
    registries: dict[str, Any] = {}
    seed_list: list[int] = []
    for name, overrides in variants.items():
        variant_data = with_overrides(base, overrides)
        for size in sizes:
            sized = with_overrides(variant_data, sizes_table[size]) if size is not None else variant_data
            for b in budgets:
                for lr in lrs:
                    for seed in chosen if chosen is not None else [None]:
                        run = with_overrides(sized, {"budget": {"train_flops": b if b is not None else budget.train_flops}})
                        if lr is not None:
                            run = with_overrides(run, {"train": {"lr": lr}})
                        if seed is not None:
                            run = with_overrides(run, {"train": {"seed": seed}, "data": {"seed": seed}})
                        try:
                            plugins = json.dumps(run.get("plugins"), sort_keys=True, default=str)
                            if plugins not in registries:  # one registry per [plugins] table, not per run
                                registries[plugins] = registry_for(run)
                            config, registry = load_experiment(run, registries[plugins])
                        except ConfigError as exc:
                            what = f"variant {name!r}" + (f", size {size!r}" if size is not None else "")
                            raise ConfigError(f"{where}: {what}: {exc}") from None
                        k = config.train.seed if seed is None else seed
                        if chosen is None and k not in seed_list:
                            seed_list.append(k)
                        runs.append(RunSpec(name, k, size, b, lr, run, config, registry))
    return Ablation(where, runs, list(variants), list(chosen) if chosen is not None else seed_list, reference,
                    sizes, budgets, lrs, ev, chosen is not None)


def default_ablation_path() -> Path:
    import importlib.resources

    return Path(str(importlib.resources.files("blt") / "configs" / "ablations" / "default.toml"))


def parse_seeds(text: str) -> list[int]:
    """``--seeds 0,1,2`` as a list; a ConfigError for anything else."""
    try:
        out = [int(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: expected integers separated by commas, e.g. 0,1,2") from None
    return out


__all__ = ["Ablation", "AblationBudget", "EvalConfig", "GridConfig", "RunSpec", "default_ablation_path",
           "parse_seeds", "resolve_ablation"]
