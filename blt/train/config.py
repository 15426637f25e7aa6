"""``[train]``, ``[budget]`` and ``[run]``: optimisation, schedule, evaluation cadence, the compute
budget, and the run environment (where and how a run executes, not what it computes)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta

from blt.core.config import Config, PositiveInt
from blt.core.errors import ConfigError

NonNegFloat = Annotated[float, Meta(ge=0)]


class TrainConfig(Config):
    """The ``[train]`` table of an experiment.

    AdamW (``betas``, ``eps``, ``weight_decay`` on all parameters) with linear warmup over
    ``warmup`` steps, then cosine decay to ``lr * lr_min_ratio`` at the last step. One optimizer
    step sees ``grad_accum * batch_size * seq_len`` target bytes. ``steps`` is the run length;
    when ``[budget] train_flops`` is set and ``steps`` is not, the steps come from the budget.
    ``dtype``: ``auto`` is bf16 autocast on CUDA devices that support it and fp32 elsewhere.
    """

    lr: Annotated[float, Meta(gt=0)] = 1e-3
    lr_min_ratio: Annotated[float, Meta(ge=0, le=1)] = 0.1
    warmup: Annotated[int, Meta(ge=0)] = 20
    weight_decay: NonNegFloat = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: Annotated[float, Meta(gt=0)] = 1e-8
    clip: NonNegFloat = 1.0                 # max global grad norm; 0 disables clipping
    grad_accum: PositiveInt = 1
    steps: PositiveInt | None = None
    eval_every: Annotated[int, Meta(ge=0)] = 50   # 0: only at the end
    eval_points: PositiveInt | None = None        # if set: evaluate about this many times (overrides eval_every)
    eval_bytes: PositiveInt | None = 32768        # held-out target bytes per evaluation (None: all)
    checkpoint_every: Annotated[int, Meta(ge=0)] = 50  # 0: only at the end
    keep_checkpoints: PositiveInt = 2
    seed: int = 0
    dtype: Literal["auto", "fp32", "bf16"] = "auto"


class BudgetConfig(Config):
    """``[budget]``: every ablation variant trains to ``train_flops`` (training FLOPs = 3 x forward)."""

    train_flops: Annotated[float, Meta(gt=0)] | None = None


class RunConfig(Config):
    """The ``[run]`` table: the run environment. A run's fingerprint is every other table, so a
    run resumes (and an ablation variant is recognised) whatever ``[run]`` says.

    ``out_dir``: the run directory (``blt train --out`` overrides it). ``device``: ``auto`` is
    the rank-local CUDA device when there is one, else CPU. ``parallel``: ``auto`` is DDP when
    launched with more than one rank (torchrun), else none. ``log_every``: steps between rows
    of ``metrics.jsonl``.
    """

    out_dir: str = "runs/default"
    device: str = "auto"
    parallel: Literal["auto", "none", "ddp", "fsdp"] = "auto"
    progress: bool = True
    log_every: PositiveInt = 10


MOVED_TO_RUN = ("out_dir", "device", "parallel", "progress", "log_every")


def check_moved_to_run(data: Any, path: str = "$") -> None:
    """Refuse a run-environment field still written under ``[train]``, naming where it lives now."""
    train = data.get("train") if isinstance(data, dict) else None
    if isinstance(train, dict):
        for name in MOVED_TO_RUN:
            if name in train:
                raise ConfigError(f"{path}.train.{name}: unknown field; the run environment moved to [run] "
                                  f"(write it as run.{name})")


def move_to_run(data: dict[str, Any]) -> dict[str, Any]:
    """A config recorded by an older blt (``config.json`` of a run or export) with the run
    environment moved from ``[train]`` to ``[run]``; user-written configs get the error instead."""
    train = data.get("train")
    if not isinstance(train, dict) or not any(name in train for name in MOVED_TO_RUN):
        return data
    run = dict(data.get("run") or {})
    for name in MOVED_TO_RUN:
        if name in train:
            run.setdefault(name, train[name])
    return {**data, "train": {k: v for k, v in train.items() if k not in MOVED_TO_RUN}, "run": run}


__all__ = ["BudgetConfig", "MOVED_TO_RUN", "RunConfig", "TrainConfig", "check_moved_to_run", "move_to_run"]
