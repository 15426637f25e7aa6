"""Evaluation suites on a finished ablation run, cached in the run directory.

Each suite (``[eval] suites``) and the BPB breakdown by source and script is computed once per
run on the run's held-out documents (the same bytes for every variant and seed; the noise seed is
fixed at 0 so every run sees the same perturbed text) and written atomically to
``RUN/eval/<name>.json`` with the settings it was computed under; a rerun with the same settings
reads it back instead of scoring again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from blt.core.atomic import atomic_write_json

NOISE_SEED = 0


def _cached(path: Path, settings: dict[str, Any]) -> Any:
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return saved.get("result") if saved.get("settings") == settings else None


def run_eval(run_dir: Path, config: Any, ev: Any) -> dict[str, Any]:
    """``{suite name: result, "breakdown": {...}}`` for ``ev`` (an :class:`EvalConfig`), from
    the cache where it holds the same settings, else computed and cached."""
    names = list(ev.suites) + (["breakdown"] if ev.breakdown else [])
    out: dict[str, Any] = {}
    settings = {"max_bytes": ev.max_bytes, "seed": NOISE_SEED, "documents": "per_source"}  # heldout_documents' selection
    todo = []
    for name in names:
        hit = _cached(run_dir / "eval" / f"{name}.json", settings)
        if hit is None:
            todo.append(name)
        else:
            out[name] = hit
    if todo:
        from blt.evaluation.breakdown import breakdown
        from blt.evaluation.documents import heldout_documents
        from blt.evaluation.score import Scorer
        from blt.evaluation.suites import run_suite

        scorer = Scorer.from_run(run_dir)
        documents = heldout_documents(config, max_bytes=ev.max_bytes)
        for name in todo:
            if name == "breakdown":
                result = breakdown(scorer, documents, max_bytes=ev.max_bytes)
            else:
                result = run_suite(name, scorer, documents, seed=NOISE_SEED, max_bytes=ev.max_bytes)
            atomic_write_json(run_dir / "eval" / f"{name}.json", {"settings": settings, "result": result})
            out[name] = result
    return {name: out[name] for name in names}


__all__ = ["NOISE_SEED", "run_eval"]
