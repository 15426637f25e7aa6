"""A rich progress bar for training: step count, loss, BPB and bytes/s (rank 0 only)."""

from __future__ import annotations

from typing import Any


class TrainProgress:
    """Context manager; ``update(step, loss=, bpb=, bytes_per_s=)`` after each optimizer step."""

    def __init__(self, total: int, start: int = 0, enabled: bool = True, description: str = "train") -> None:
        self.enabled = enabled
        self._progress: Any = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4f}  bpb {task.fields[bpb]:.4f}  {task.fields[bps]:,.0f} B/s"),
                TimeElapsedColumn(), TimeRemainingColumn(), transient=False,
            )
            self._task = self._progress.add_task(description, total=total, completed=start, loss=float("nan"),
                                                 bpb=float("nan"), bps=0.0)

    def __enter__(self) -> TrainProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, step: int, *, loss: float, bpb: float, bytes_per_s: float) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=step, loss=loss, bpb=bpb, bps=bytes_per_s)


__all__ = ["TrainProgress"]
