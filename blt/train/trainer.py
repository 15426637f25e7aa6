"""The training loop: AdamW, warmup + cosine, clipping, accumulation, eval, checkpoints, resume.

``train(config, out_dir=...)`` runs (or resumes, or finds finished) one experiment and returns
the final record. Loss scaling for exactness across world sizes: every rank walks the same global
micro-batches and keeps its slice; the loss it backpropagates is
``CE_sum(rank slice) * world / global_targets(step)``, and DDP/FSDP average gradients over ranks,
so the update equals the single-process update on the whole global batch.

Auxiliary losses: a model may offer ``aux_loss() -> (loss, metrics) | None`` (e.g. a learned
chunker's ratio loss), read on the unwrapped model right after each training forward. Each
micro-batch's ``loss`` is a mean-like quantity of that micro-batch, so it is weighted by the
micro-batch's share of the step's global targets: a rank backpropagates
``aux * n_targets(micro-batch) * world / global_targets``, and after DDP's average the step's
gradient is the target-weighted mean of every micro-batch's aux gradient on every rank (the plain
aux loss in one process without accumulation). Its metrics, target-weighted the same way, and
``aux_loss`` join the ``train`` rows; ``loss`` and ``bpb`` stay the cross-entropy alone.

Crash safety: checkpoints go through :mod:`blt.train.checkpoint` (atomic ``latest``);
``final.json`` and the exported weights are written with temp-file + rename after the last
checkpoint, so a finished run is recognised by ``final.json`` alone. A run holds its directory
(:mod:`blt.train.run_lock`) from its first look at it to its last write, so a second run into it
is refused before it changes anything. A resume says which checkpoint and step it continues from
(stderr and a ``"kind": "resume"`` row in ``metrics.jsonl``); a damaged newest checkpoint is
skipped with a message. A loss or gradient norm that is not finite stops the run before the
update (:class:`TrainingDiverged`), so no checkpoint ever holds the diverged weights.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path
from typing import Any

import msgspec
import torch

from blt import parallel
from blt.core.atomic import atomic_write_json
from blt.core.errors import BltError
from blt.train import checkpoint, run_lock
from blt.train.evaluate import autocast_for, ce_and_count, evaluate
from blt.train.metrics import MetricsWriter
from blt.train.objective import LN2, lr_at
from blt.train.progress import TrainProgress
from blt.train.setup import build_pieces, config_fingerprint, fingerprints, param_count, resolve_steps
from blt.train.weights import CONFIG, export_weights

FINAL = "final.json"


class TrainingDiverged(BltError):
    """The loss or gradient norm became NaN or infinite (or the weights did, before a checkpoint)."""


_KILL_POINTS = {"after_step": "kill_at_step", "in_checkpoint": "kill_in_checkpoint"}


def _fault(point: str, step: int) -> None:
    """Test hook, ``BLT_FAULT=KIND:N``: ``kill_at_step`` (after step N) and ``kill_in_checkpoint``
    (between the files of checkpoint N: shards written, ``train_state.json`` not) SIGKILL this
    process there; ``stop_at_step`` SIGSTOPs it after step N (a live run for the lock tests)."""
    spec = os.environ.get("BLT_FAULT", "")
    if not spec:
        return
    if spec == f"{_KILL_POINTS[point]}:{step}":
        os.kill(os.getpid(), signal.SIGKILL)
    if point == "after_step" and spec == f"stop_at_step:{step}":
        os.kill(os.getpid(), signal.SIGSTOP)


def _say(message: str) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(message, markup=False)


def train(config: Any, registry: Any, *, out_dir: str | Path | None = None, resume: bool = True,
          say: Any = None) -> dict[str, Any]:
    """Train ``config`` (a decoded experiment) into ``out_dir``; returns the ``final.json`` record.

    ``say(message)`` (rank 0; default: a line on stderr) hears what a user should know: a resume
    and where from, a skipped damaged checkpoint, a taken-over stale lock. Raises
    :class:`~blt.train.run_lock.RunLockedError` when another live run holds ``out_dir``,
    :class:`TrainingDiverged` when the loss stops being finite."""
    out = Path(out_dir or config.run.out_dir)
    info = parallel.init(config.run.device)
    tell = (say or _say) if info.is_main else (lambda message: None)
    with run_lock.hold(out, is_main=info.is_main, device=info.device, say=tell):
        return _train(config, registry, out, info, resume, tell)


def _all_finite(model: torch.nn.Module, info: Any) -> bool:
    """Whether every parameter (every rank's shard) is finite."""
    bad = 0.0
    with torch.no_grad():
        for p in model.parameters():
            local = p.to_local() if hasattr(p, "to_local") else p
            bad += float(not bool(torch.isfinite(local).all()))
    return parallel.all_reduce_sum([bad], info.device)[0] == 0


def _resume(ckpt_root: Path, wrapped: Any, optimizer: Any, prints: dict[str, str],
            info: Any) -> tuple[Path | None, Any, list[str]]:
    """Load the best usable checkpoint: ``(path, train_state, reasons others were skipped)``.

    Every rank judges each candidate and they agree (one all-reduce) before moving on. A
    checkpoint of another config is refused, not skipped; damaged ones are skipped; when there
    were checkpoints and none loads, one CheckpointError names each and why."""
    candidates, note = checkpoint.resume_candidates(ckpt_root)
    skipped = [note] if note else []
    for cand in candidates:
        why = checkpoint.problem(cand)
        state = None
        if why is None:
            checkpoint.check_compatible(cand, checkpoint.read_train_state(cand), prints)
            try:
                state = checkpoint.load(cand, wrapped, optimizer, info.rank)
            except checkpoint.CheckpointError as exc:
                why = str(exc)
        if parallel.all_reduce_sum([0.0 if why is None else 1.0], info.device)[0] and why is None:
            why = f"checkpoint {cand} could not be read on another rank"
        if why is None:
            return cand, state, skipped
        skipped.append(why)
    if skipped:
        raise checkpoint.CheckpointError(f"no checkpoint in {ckpt_root} can be resumed from: {'; '.join(skipped)}; restore "
                                         "one, or start afresh with --no-resume")
    return None, None, []


def _train(config: Any, registry: Any, out: Path, info: Any, resume: bool, tell: Any) -> dict[str, Any]:
    tc, run = config.train, config.run
    final_path, ckpt_root = out / FINAL, out / "checkpoints"
    config_fp = config_fingerprint(config)
    if resume and final_path.is_file():
        final = json.loads(final_path.read_text(encoding="utf-8"))
        if final.get("config_fingerprint") != config_fp:
            raise checkpoint.CheckpointError(
                f"{out} holds a finished run of a different config (fingerprint {final.get('config_fingerprint')}, this "
                f"config has {config_fp}); it is kept: choose another --out, or --no-resume to replace it")
        return final
    if not resume and info.is_main:
        import shutil

        for stale in (ckpt_root, final_path, out / "metrics.jsonl", out / "tensorboard"):
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    parallel.barrier()

    pieces = build_pieces(config, registry, info)
    costs = pieces.costs
    steps = resolve_steps(config, costs.train_per_position)
    prints = fingerprints(config, steps)
    eval_every = max(1, steps // tc.eval_points) if tc.eval_points else tc.eval_every
    model = pieces.model.to(info.device)
    params = param_count(model)
    wrapped = parallel.wrap_model(model, run.parallel, info)
    optimizer = torch.optim.AdamW(wrapped.parameters(), lr=tc.lr, betas=tuple(tc.betas), eps=tc.eps,
                                  weight_decay=tc.weight_decay, foreach=False)
    from blt.data import TrainStream

    stream = TrainStream(pieces.train_store, config.data.seq_len, config.data.seed)
    step, wall_before, bytes_seen = 0, 0.0, 0
    found, state, skipped = _resume(ckpt_root, wrapped, optimizer, prints, info) if resume else (None, None, [])
    if found is not None:
        step, wall_before, bytes_seen = int(state["step"]), float(state["wall_s"]), int(state["bytes"])
        stream.load_state_dict(state["data"])
        resumed_loss = float(state.get("loss", float("nan")))
        for why in skipped:
            tell(f"skipped a damaged checkpoint: {why}")
        tell(f"resuming from {found} (step {step} of {steps}{', the newest readable one' if skipped else ''}): "
             "weights, optimizer, data order and RNG continue from there")
    else:
        torch.manual_seed(tc.seed + 1 + info.rank)  # training randomness (dropout), separate from init

    if info.is_main:  # after the compatibility check: a refused config never replaces the run's own
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / CONFIG, msgspec.to_builtins(config))
    metrics = MetricsWriter(out, enabled=info.is_main, resume_step=step if found else None)
    if found is not None:
        metrics.write({"kind": "resume", "step": step, "checkpoint": found.name, "skipped": skipped,
                       "continues": ["weights", "optimizer", "data order", "rng"]})
    last_saved = found
    per_step_flops = costs.train_per_position * config.data.seq_len * config.data.batch_size * tc.grad_accum
    progress = TrainProgress(total=steps, start=step, enabled=info.is_main and run.progress)
    start_clock = time.perf_counter()
    last_loss, last_eval = (resumed_loss if found is not None else float("nan")), None

    def state_now() -> dict[str, Any]:
        return {"step": step, "data": stream.state_dict(), "fingerprints": prints, "bytes": bytes_seen,
                "wall_s": wall_before + time.perf_counter() - start_clock, "steps": steps, "loss": last_loss}

    def run_eval() -> dict[str, Any]:
        res = evaluate(wrapped, pieces.heldout_store, seq_len=config.data.seq_len, batch_size=config.data.batch_size,
                       max_bytes=tc.eval_bytes, device=info.device, dtype=tc.dtype, rank=info.rank, world=info.world)
        metrics.write({"kind": "eval", "step": step, "eval_bpb": res["bpb"], "eval_bytes": res["bytes"],
                       "train_flops": step * per_step_flops, "eval_bytes_per_s": res["bytes_per_s"],
                       **({"stats": res["stats"]} if "stats" in res else {})})
        return res

    wrapped.train()
    with progress:
        while step < steps:
            lr = lr_at(step, lr=tc.lr, warmup=tc.warmup, total=steps, lr_min_ratio=tc.lr_min_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr
            t0 = time.perf_counter()
            micro = [stream.next_batch(config.data.batch_size, info.rank, info.world) for _ in range(tc.grad_accum)]
            global_targets = sum(m.global_targets for m in micro)
            ce_local, aux_local = 0.0, {}
            for mb in micro:
                with autocast_for(info.device, tc.dtype):
                    ce, n_local = ce_and_count(wrapped, mb, info.device)
                    aux = model_aux_loss(model)
                scaled = ce * info.world / global_targets
                if aux is not None:  # weighted by this micro-batch's share of the step's targets (module docstring)
                    scaled = scaled + aux[0] * (n_local * info.world / global_targets)
                    for key, value in {"aux_loss": float(aux[0].detach()), **aux[1]}.items():
                        aux_local[key] = aux_local.get(key, 0.0) + float(value) * n_local
                scaled.backward()
                ce_local += float(ce.detach())
            grad_norm = torch.nn.utils.clip_grad_norm_(wrapped.parameters(), tc.clip if tc.clip > 0 else float("inf"))
            grad_norm = float(grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm)
            loss = parallel.all_reduce_sum([ce_local], info.device)[0] / global_targets
            aux_keys = sorted(aux_local)  # the same model on every rank: the same keys
            aux_row = dict(zip(aux_keys, (v / global_targets for v in parallel.all_reduce_sum(
                [aux_local[k] for k in aux_keys], info.device)))) if aux_keys else {}
            if not (math.isfinite(loss) and math.isfinite(grad_norm)):  # the same on every rank: all stop here
                metrics.write({"kind": "diverged", "step": step + 1, "loss": loss, "grad_norm": grad_norm, "lr": lr})
                metrics.close()
                raise TrainingDiverged(f"loss became {loss} (grad norm {grad_norm}) at step {step + 1}; stopped before that "
                                       f"update. {_last_good(last_saved)}")
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            bytes_seen += global_targets
            last_loss = loss
            dt = time.perf_counter() - t0
            progress.update(step, loss=last_loss, bpb=last_loss / LN2, bytes_per_s=global_targets / max(dt, 1e-9))
            if step % run.log_every == 0 or step == steps:
                metrics.write({"kind": "train", "step": step, "loss": last_loss, "bpb": last_loss / LN2, "lr": lr,
                               "grad_norm": grad_norm, "bytes": bytes_seen, "bytes_per_s": global_targets / max(dt, 1e-9),
                               "train_flops": step * per_step_flops, **aux_row})
            if (eval_every and step % eval_every == 0) or step == steps:
                last_eval = run_eval()
            if (tc.checkpoint_every and step % tc.checkpoint_every == 0) or step == steps:
                if not _all_finite(wrapped, info):
                    metrics.close()
                    raise TrainingDiverged(f"the weights became NaN or infinite in the update of step {step} (loss "
                                           f"{last_loss:.4f} before it); checkpoint {step} was not written. "
                                           f"{_last_good(last_saved)}")
                last_saved = checkpoint.save(ckpt_root, step, wrapped, optimizer, state_now(), info.rank,
                                             tc.keep_checkpoints, _fault)
            _fault("after_step", step)
    if last_eval is None:  # resumed at the very end: the run was complete but final.json was not written
        last_eval = run_eval()
    wall = wall_before + time.perf_counter() - start_clock
    record = {
        "steps": steps, "loss": last_loss, "eval_bpb": last_eval["bpb"], "eval_bytes": last_eval["bytes"],
        "eval_bytes_per_s": last_eval["bytes_per_s"], "train_flops": steps * per_step_flops,
        "train_flops_per_byte": costs.train_per_byte, "inference_flops_per_byte": costs.inference_per_byte,
        "flops_by_component": costs.forward_by_component, "avg_patch_size": costs.avg_patch_size, "params": params,
        "bytes": bytes_seen, "bytes_per_s": bytes_seen / max(wall, 1e-9), "wall_s": wall, "fingerprints": prints,
        "world_size": info.world, "config_fingerprint": config_fp,
    }
    if "stats" in last_eval:  # a model that chooses its own patches: its realised average on held-out text
        record["stats"] = last_eval["stats"]
        record["avg_patch_size"] = last_eval["stats"].get("avg_patch_size", record["avg_patch_size"])
    if info.is_main:
        export_weights(wrapped, config, out / "export")
    else:
        parallel.full_model_state(wrapped)  # a collective under FSDP: every rank takes part
    if info.is_main:
        atomic_write_json(final_path, record)
    metrics.close()
    parallel.barrier()
    return record


def model_aux_loss(model: torch.nn.Module) -> tuple[torch.Tensor, dict[str, float]] | None:
    """The unwrapped model's auxiliary loss of its last forward (``model.aux_loss()`` -> ``(loss,
    metrics)`` or None), or None for a model without one."""
    aux_loss = getattr(model, "aux_loss", None)
    return aux_loss() if callable(aux_loss) else None


def _last_good(path: Path | None) -> str:
    advice = "lower train.lr or raise train.warmup, then start afresh with --no-resume"
    if path is None:
        return f"No checkpoint was written before it; {advice}"
    return f"The last good checkpoint is {path} (step {checkpoint.step_of(path)}), loadable as before; {advice}"


__all__ = ["FINAL", "TrainingDiverged", "export_weights", "train"]
