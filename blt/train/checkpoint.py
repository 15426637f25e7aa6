"""Training checkpoints with ``torch.distributed.checkpoint`` (DCP), written so a crash is harmless.

Layout under ``<out_dir>/checkpoints/``::

    step_000120/          .metadata + DCP shards (model, optimizer) + train_state.json + rank*.json
    latest                one line: the name of the newest complete checkpoint

Writing: every rank saves into ``.tmp-step_000120``; rank 0 then adds ``train_state.json``
(step, data position, schedule, config fingerprints and the size of every other file), renames
the directory into place and only then replaces ``latest`` (write-to-temp + ``os.replace``). A
crash at any point leaves ``latest`` naming a complete checkpoint. Nothing is unpickled: the
extra state is JSON and DCP loads tensors into the live model's state dict. RNG states are
stored per rank (hex in JSON).

Pruning keeps the ``keep`` newest readable checkpoints by step, counting back from the one just
written (which ``latest`` names); it never removes that one, nor a checkpoint with a later step
(left by a crash between the rename and ``latest``: training overwrites it when it gets there).
Resuming tries the checkpoint ``latest`` names, then older ones newest first
(:func:`resume_candidates`); a damaged one is skipped with a message, never silently.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch

from blt import parallel
from blt.core.atomic import atomic_write_text
from blt.core.errors import BltError

LATEST = "latest"
STATE = "train_state.json"


class CheckpointError(BltError):
    """A checkpoint is missing, corrupt, or belongs to a different config."""


def rng_state() -> dict[str, str]:
    state = {"torch": torch.get_rng_state().numpy().tobytes().hex()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state().numpy().tobytes().hex()
    return state


def set_rng_state(state: dict[str, str]) -> None:
    torch.set_rng_state(torch.frombuffer(bytearray.fromhex(state["torch"]), dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(torch.frombuffer(bytearray.fromhex(state["cuda"]), dtype=torch.uint8))


def save(ckpt_root: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
         train_state: dict[str, Any], rank: int, keep: int = 2, fault: Any = None) -> Path:
    """Write checkpoint ``step`` and point ``latest`` at it; keep the newest ``keep`` checkpoints."""
    name = f"step_{step:08d}"
    final, tmp = ckpt_root / name, ckpt_root / f".tmp-{name}"
    if rank == 0:
        ckpt_root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    parallel.barrier()
    model_sd, optim_sd = parallel.get_train_state(model, optimizer)
    with warnings.catch_warnings():  # "assuming the intent is to save in a single process": yes, it is
        warnings.simplefilter("ignore", UserWarning)
        parallel.dcp_save({"model": model_sd, "optim": optim_sd}, str(tmp))
    if fault is not None and rank == 0:
        fault("in_checkpoint", step)  # between files: shards written, rank files and train_state.json not yet
    atomic_write_text(tmp / f"rank{rank}.json", json.dumps({"rng": rng_state()}))
    parallel.barrier()
    if rank == 0:
        files = {p.relative_to(tmp).as_posix(): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
        atomic_write_text(tmp / STATE, json.dumps({**train_state, "files": files}, indent=1))
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        atomic_write_text(ckpt_root / LATEST, name + "\n")
        prune(ckpt_root, step, keep)
    parallel.barrier()
    return final


def step_of(path: Path) -> int | None:
    """The step of a ``step_NNNNNNNN`` directory name, else None."""
    digits = path.name[len("step_"):]
    return int(digits) if path.name.startswith("step_") and digits.isdigit() else None


def checkpoints(ckpt_root: Path) -> list[Path]:
    """Every ``step_*`` directory under ``ckpt_root``, in step order (oldest first)."""
    found = [p for p in ckpt_root.glob("step_*") if p.is_dir() and step_of(p) is not None] if ckpt_root.is_dir() else []
    return sorted(found, key=step_of)


def prune(ckpt_root: Path, newest: int, keep: int) -> None:
    """Keep checkpoint ``newest`` and the ``keep - 1`` readable ones just before it (by step);
    remove the older ones. Checkpoints after ``newest`` are left alone."""
    older = [p for p in reversed(checkpoints(ckpt_root)) if step_of(p) < newest]
    kept = 1
    for path in older:
        if kept < keep and problem(path) is None:
            kept += 1
        else:
            shutil.rmtree(path, ignore_errors=True)


def problem(path: Path) -> str | None:
    """Why checkpoint ``path`` cannot be resumed from, judged without loading tensors (None: it looks whole).

    Reads ``train_state.json`` and compares every file it lists with the size it was written with,
    so a truncated or missing shard is found before DCP reads it."""
    try:
        state = read_train_state(path)
    except CheckpointError as exc:
        return str(exc)
    for rel, size in (state.get("files") or {}).items():
        f = path / rel
        if not f.is_file():
            return f"checkpoint {path} is incomplete: {rel} is missing"
        if f.stat().st_size != size:
            return f"checkpoint file {f} is truncated or damaged ({f.stat().st_size} bytes, written with {size})"
    return None


def resume_candidates(ckpt_root: Path) -> tuple[list[Path], str | None]:
    """The checkpoints a resume may use, best first, and a note when ``latest`` is unusable.

    The one ``latest`` names comes first, then the older ones newest first. Without a usable
    ``latest`` (missing, or naming nothing) every checkpoint is a candidate, newest first."""
    every = checkpoints(ckpt_root)
    pointer = ckpt_root / LATEST
    if not pointer.is_file():
        return list(reversed(every)), None
    name = pointer.read_text(encoding="utf-8", errors="replace").strip()
    named = ckpt_root / name
    if not (named.is_dir() and step_of(named) is not None):
        return list(reversed(every)), f"{pointer} names {name!r}, which is not a checkpoint directory"
    return [named, *reversed([p for p in every if step_of(p) < step_of(named)])], None


def latest(ckpt_root: Path) -> Path | None:
    """The newest complete checkpoint, or None when there is none."""
    pointer = ckpt_root / LATEST
    if not pointer.is_file():
        return None
    name = pointer.read_text(encoding="utf-8").strip()
    path = ckpt_root / name
    if not name.startswith("step_") or not path.is_dir():
        raise CheckpointError(f"{pointer} names {name!r}, which is not a checkpoint directory; the run directory is damaged "
                              "(restore it, or start afresh with --no-resume)")
    return path


def read_train_state(path: Path) -> dict[str, Any]:
    state_file = path / STATE
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path} is not a complete checkpoint: {STATE} is missing") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt: {STATE} does not parse ({exc})") from None
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path} is unreadable: {STATE}: {exc.strerror or exc}") from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise CheckpointError(f"checkpoint {path} is corrupt: {STATE} holds no step")
    return state


def check_compatible(path: Path, state: dict[str, Any], expected: dict[str, str]) -> None:
    """Refuse a checkpoint whose recorded config fingerprints differ from this run's."""
    recorded = state.get("fingerprints", {})
    for part, fp in expected.items():
        if recorded.get(part) != fp:
            raise CheckpointError(
                f"checkpoint {path} was written for a different {part} config (fingerprint {recorded.get(part)}, "
                f"this config has {fp}); use the config it was trained with, another --out, or --no-resume")


def read_dcp(target: dict[str, Any], path: Path, fits: str) -> None:
    """Fill ``target`` in place from the DCP checkpoint at ``path``; any failure is one CheckpointError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            parallel.dcp_load(target, str(path))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # DCP's CheckpointException derives from BaseException
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"checkpoint {path} is corrupt or does not match {fits}: {first[:300]}") from None


def load(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, rank: int) -> dict[str, Any]:
    """Load model and optimizer state from ``path`` into the live objects; returns train_state."""
    state = read_train_state(path)
    model_sd, optim_sd = parallel.get_train_state(model, optimizer)
    target = {"model": model_sd, "optim": optim_sd}
    read_dcp(target, path, "this model")
    parallel.set_train_state(model, optimizer, target["model"], target["optim"])
    rank_file = path / f"rank{rank}.json"
    if rank_file.is_file():
        try:
            set_rng_state(json.loads(rank_file.read_text())["rng"])
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(f"checkpoint {path} is corrupt: {rank_file.name} ({exc})") from None
    return state


__all__ = ["CheckpointError", "check_compatible", "checkpoints", "latest", "load", "problem", "prune", "read_train_state",
           "resume_candidates", "save", "step_of"]
