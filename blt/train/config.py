"""``[train]`` and ``[budget]``: optimisation, schedule, evaluation cadence and the compute budget."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from blt.core.config import Config, PositiveInt

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
    log_every: PositiveInt = 10
    checkpoint_every: Annotated[int, Meta(ge=0)] = 50  # 0: only at the end
    keep_checkpoints: PositiveInt = 2
    seed: int = 0
    dtype: Literal["auto", "fp32", "bf16"] = "auto"
    device: str = "auto"                    # auto: cuda when available (rank-local), else cpu
    parallel: Literal["auto", "none", "ddp", "fsdp"] = "auto"  # auto: ddp when launched with >1 rank
    out_dir: str = "runs/default"
    progress: bool = True


class BudgetConfig(Config):
    """``[budget]``: every ablation variant trains to ``train_flops`` (training FLOPs = 3 x forward)."""

    train_flops: Annotated[float, Meta(gt=0)] | None = None


__all__ = ["BudgetConfig", "TrainConfig"]
