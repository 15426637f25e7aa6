"""Running ablation runs: one at a time in this process, or in a pool of worker processes.

A job trains one run (resuming it, or returning its ``final.json`` when it finished earlier) and
then computes its ``[eval]`` suites. Workers are spawned (a fresh interpreter: no forked torch
state), each with ``threads`` intra-op threads and its own per-run progress bar switched off
(``[run] progress`` is outside a run's fingerprint); what the trainer would tell the user comes
back to the parent through one queue, and the parent draws all progress. A run's numbers do not
depend on where it runs: the same config, seed and data order, on one thread per worker.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_mod
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable

from blt.core.errors import BltError

_QUEUE: Any = None  # a worker's message queue to the parent (set by _init_worker)


class WorkerDied(BltError):
    """A worker process ended without finishing its run (killed, out of memory)."""


def _init_worker(messages: Any, threads: int) -> None:
    global _QUEUE
    _QUEUE = messages
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


def execute(job: dict[str, Any], say: Callable[[str], None] | None = None, progress: bool | None = None) -> dict[str, Any]:
    """Train ``job["data"]`` into ``job["dir"]`` and run its eval; ``{"final", "eval"}``.

    ``job``: ``data`` (the experiment as plain data), ``dir``, ``fingerprint`` (checked against
    the decoded config), ``eval`` (``EvalConfig`` as plain data or ``None``), ``label``."""
    from blt.ablation.suites import run_eval
    from blt.ablation.spec import EvalConfig
    from blt.core.config import convert
    from blt.experiment import load_experiment, with_overrides
    from blt.train.setup import config_fingerprint
    from blt.train.trainer import train

    if say is None:
        label = job["label"]

        def say(message: str) -> None:
            _QUEUE.put(("say", label, message))
    data = job["data"] if progress is None else with_overrides(job["data"], {"run": {"progress": progress}})
    config, registry = load_experiment(data)
    if config_fingerprint(config) != job["fingerprint"]:  # the parent resolved the same data: never expected
        raise BltError(f"{job['label']}: the config decoded in the worker has fingerprint {config_fingerprint(config)}, "
                       f"the ablation resolved {job['fingerprint']}")
    final = train(config, registry, out_dir=job["dir"], resume=True, say=say)
    ev = None if job["eval"] is None else convert(job["eval"], EvalConfig)
    return {"final": final, "eval": run_eval(Path(job["dir"]), config, ev) if ev is not None else None}


def run_in_pool(jobs: list[dict[str, Any]], workers: int, threads: int, *, on_start: Callable[[int], None],
                on_done: Callable[[int, dict[str, Any]], None], on_message: Callable[[str, str], None],
                on_tick: Callable[[list[int]], None], tick_s: float = 0.5) -> None:
    """Run ``jobs`` with ``workers`` spawned processes, at most ``workers`` at a time in file
    order; call back (in this process) as each starts and finishes, for each worker message, and
    every ``tick_s`` with the indices still running. The first failure stops the pool (running
    workers are ended: their runs resume from their checkpoints next time) and is raised."""
    ctx = multiprocessing.get_context("spawn")
    messages = ctx.Queue()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(messages, threads))
    running: dict[Future, int] = {}
    pending = list(range(len(jobs)))

    def drain() -> None:
        while True:
            try:
                _kind, label, text = messages.get_nowait()
            except queue_mod.Empty:
                return
            on_message(label, text)

    clean = False
    try:
        while pending or running:
            while pending and len(running) < workers:
                i = pending.pop(0)
                running[pool.submit(execute, jobs[i], None, False)] = i
                on_start(i)
            done, _ = wait(list(running), timeout=tick_s, return_when=FIRST_COMPLETED)
            drain()
            for fut in sorted(done, key=lambda f: running[f]):
                i = running.pop(fut)
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    names = ", ".join(jobs[k]["label"] for k in sorted([i, *running.values()]))
                    raise WorkerDied(f"a worker process died while running {names}; finished runs are kept: rerun the "
                                     "same command to resume") from None
                on_done(i, result)
            on_tick(sorted(running.values()))
        clean = True
    finally:
        drain()
        if not clean:
            for proc in list(getattr(pool, "_processes", {}).values()):  # end the runs in flight now, not after them
                proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        messages.close()


__all__ = ["WorkerDied", "execute", "run_in_pool"]
