"""Metrics sinks: one JSON object per line in ``metrics.jsonl`` and TensorBoard event files.

Only rank 0 writes. On resume the JSONL file is cut back to the resumed step (rows logged after
the checkpoint are recomputed), so the file always reads as one uninterrupted run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from blt.core.atomic import atomic_write_text


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:  # a torn last line from a crash
            break
    return rows


class MetricsWriter:
    """``write(row)`` appends to ``metrics.jsonl`` and mirrors numeric fields to TensorBoard."""

    def __init__(self, out_dir: Path, *, enabled: bool, resume_step: int | None, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.path = out_dir / "metrics.jsonl"
        self._tb = None
        if not enabled:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        keep = [r for r in read_metrics(self.path) if resume_step is not None and r.get("step", 0) <= resume_step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(out_dir / "tensorboard"), purge_step=(resume_step or 0) + 1)
            except ImportError:  # tensorboard not installed: JSONL only
                self._tb = None

    def write(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        if self._tb is not None:
            step = int(row.get("step", 0))
            prefix = "eval" if row.get("kind") == "eval" else "train"
            for key, value in row.items():
                if key not in ("step", "kind") and isinstance(value, (int, float)):
                    self._tb.add_scalar(f"{prefix}/{key}", value, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
            self._tb = None


__all__ = ["MetricsWriter", "read_metrics"]
