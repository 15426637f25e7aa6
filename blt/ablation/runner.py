"""Matched-compute ablations: every run of an ablation file trained, evaluated and summarised.

Each run trains in ``DIR/runs/<variant>/seed<k>[/<size>-flops<budget>-lr<lr>]`` (resumable). Its
``run.json`` stamp records the resolved config's fingerprint; a finished run (``final.json``) of
that fingerprint is reused, never retrained, and a directory stamped with another fingerprint is
never overwritten. ``results.json`` / ``results.md`` and the plots are rewritten atomically
after each run, from the finished runs' records, so an interrupted ablation leaves a valid
partial summary and the same command resumes it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import msgspec

from blt.ablation.results import write_results
from blt.ablation.spec import Ablation, RunSpec, resolve_ablation
from blt.core.atomic import atomic_write_json
from blt.core.errors import BltError
from blt.train.run_lock import hold

STAMP = "run.json"


class AblationError(BltError):
    """An ablation directory holds a finished result that this file would overwrite."""


def run_fingerprint(spec: RunSpec) -> str:
    from blt.train.setup import config_fingerprint

    return config_fingerprint(spec.config)


def record_for(spec: RunSpec, fp: str, final: dict[str, Any], evals: dict[str, Any] | None) -> dict[str, Any]:
    """One run's row of ``results.json`` (under its variant's ``runs``)."""
    return {"variant": spec.variant, "seed": spec.seed, "size": spec.size, "budget": spec.budget, "lr": spec.lr,
            "dir": spec.rel_dir, "fingerprint": fp, "bpb": final["eval_bpb"], "train_flops": final["train_flops"],
            "inference_flops_per_byte": final["inference_flops_per_byte"], "avg_patch_size": final["avg_patch_size"],
            "params": final["params"], "bytes_per_s": final["bytes_per_s"], "wall_s": final["wall_s"],
            "steps": final["steps"], "train_flops_per_byte": final["train_flops_per_byte"],
            "configured_lr": spec.config.train.lr, **({"eval": evals} if evals is not None else {})}


def default_jobs(n_runs: int) -> int:
    """One single-thread worker per CPU core (small models scale better across processes than
    across threads), at most one per run; one process on a CUDA machine."""
    try:
        import torch

        if torch.cuda.is_available():
            return 1
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, n_runs))


def _prepare(spec: RunSpec, out: Path) -> tuple[str, Path]:
    """Stamp (or check the stamp of) a run directory; ``(fingerprint, directory)``."""
    fp = run_fingerprint(spec)
    rdir = out / spec.rel_dir
    stamp = rdir / STAMP
    if stamp.is_file():
        recorded = json.loads(stamp.read_text(encoding="utf-8")).get("fingerprint")
        if recorded != fp:
            raise AblationError(f"{rdir} holds {spec.label} trained with a different config (fingerprint {recorded}, now "
                                f"{fp}); it is never overwritten: use another --out, or rename the variant")
    else:
        rdir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(stamp, {"variant": spec.variant, "seed": spec.seed, "size": spec.size, "budget": spec.budget,
                                  "lr": spec.lr, "fingerprint": fp, "config": msgspec.to_builtins(spec.config)})
    return fp, rdir


def _finished(rdir: Path, fp: str, ablation: Ablation) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
    """``(final, eval)`` of a run that needs no work (trained, and every eval cached), else None."""
    from blt.ablation.suites import NOISE_SEED, _cached

    final_path = rdir / "final.json"
    if not final_path.is_file():
        return None
    final = json.loads(final_path.read_text(encoding="utf-8"))
    if final.get("config_fingerprint") != fp:
        return None  # train() refuses it with the reason
    ev = ablation.eval
    if ev is None:
        return final, None
    settings = {"max_bytes": ev.max_bytes, "seed": NOISE_SEED}
    evals = {}
    for name in list(ev.suites) + (["breakdown"] if ev.breakdown else []):
        hit = _cached(rdir / "eval" / f"{name}.json", settings)
        if hit is None:
            return None
        evals[name] = hit
    return final, evals


Report = Callable[..., None]


def run_ablation(path: str | Path, out: str | Path, *, seeds: list[int] | None = None, jobs: int | None = None,
                 report: Report | None = None) -> list[dict[str, Any]]:
    """Train and evaluate every unfinished run of ``path`` into ``out``; returns ``results.json``.

    ``seeds`` replaces the file's ``[budget] seeds``; ``jobs`` is the number of worker processes
    (``None``: :func:`default_jobs`; 1: in this process). ``report(event, **fields)`` hears
    ``plan`` (ablation, total, todo, jobs), ``skip``/``start``/``done`` (spec, index, record), ``say``
    (label, message) and ``tick`` (running: list of (spec, last metrics row)). ``out`` is
    locked for the whole ablation and each run's directory while it trains."""
    out = Path(out)
    ablation = resolve_ablation(path, seeds=seeds)
    with hold(out, is_main=os.environ.get("RANK", "0") == "0"):
        return _run(ablation, out, jobs, report or (lambda event, **fields: None))


def _run(ablation: Ablation, out: Path, jobs: int | None, report: Report) -> list[dict[str, Any]]:
    from blt.ablation.workers import execute, run_in_pool

    records: dict[int, dict[str, Any]] = {}
    todo: list[int] = []
    prints: dict[int, str] = {}
    for i, spec in enumerate(ablation.runs):
        fp, rdir = _prepare(spec, out)
        prints[i] = fp
        done = _finished(rdir, fp, ablation)
        if done is None:
            todo.append(i)
        else:
            records[i] = record_for(spec, fp, *done)
    n_jobs = max(1, min(jobs if jobs is not None else default_jobs(len(todo)), max(1, len(todo))))
    report("plan", ablation=ablation, total=len(ablation.runs), todo=len(todo), jobs=n_jobs)
    for i in sorted(records):
        report("skip", spec=ablation.runs[i], index=i, record=records[i])
    if records:
        write_results(out, ablation, _ordered(records))
    job_data = {i: {"data": ablation.runs[i].data, "dir": str(out / ablation.runs[i].rel_dir), "fingerprint": prints[i],
                    "eval": None if ablation.eval is None else msgspec.to_builtins(ablation.eval),
                    "label": ablation.runs[i].label} for i in todo}

    def finish(i: int, result: dict[str, Any]) -> None:
        records[i] = record_for(ablation.runs[i], prints[i], result["final"], result["eval"])
        write_results(out, ablation, _ordered(records))
        report("done", spec=ablation.runs[i], index=i, record=records[i])

    if n_jobs == 1:
        for i in todo:
            spec = ablation.runs[i]
            report("start", spec=spec, index=i)
            finish(i, execute(job_data[i], say=lambda message, label=spec.label: report("say", label=label, message=message)))
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = max(1, cores // n_jobs)

        def tick(running: list[int]) -> None:
            report("tick", running=[(ablation.runs[todo[k]], _last_train_row(out / ablation.runs[todo[k]].rel_dir))
                                    for k in running])

        run_in_pool([job_data[i] for i in todo], n_jobs, threads,
                    on_start=lambda k: report("start", spec=ablation.runs[todo[k]], index=todo[k]),
                    on_done=lambda k, result: finish(todo[k], result),
                    on_message=lambda label, message: report("say", label=label, message=message), on_tick=tick)
    return write_results(out, ablation, _ordered(records))


def _ordered(records: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    return [records[i] for i in sorted(records)]


def _last_train_row(rdir: Path) -> dict[str, Any] | None:
    """The newest ``train`` row of a run's ``metrics.jsonl`` (its last few KB), for progress."""
    path = rdir / "metrics.jsonl"
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("kind") == "train":
            return row
    return None


__all__ = ["AblationError", "default_jobs", "record_for", "run_ablation"]
