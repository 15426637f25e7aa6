"""Train an entropy model (transformer or CNN) on a byte corpus and save it.

Documents are tokenized with BOS/EOS and concatenated into one stream; training rows are random
windows of ``seq_len + 1`` tokens from it (packed: several documents per row, kept apart by the
transformer's EOS blocks). Held-out BPB is the streamed next-token loss (full context, window
included) over the held-out documents, in bits per byte, every non-pad target counted (as for the
main model).
"""

from __future__ import annotations

import math
import pathlib
import time
from collections.abc import Callable
from typing import Annotated, Any

import msgspec
import torch
from msgspec import Meta

from blt.core.config import Config, PositiveInt
from blt.core.errors import InputError
from blt.entropy.cnn import CNNEntropyConfig
from blt.entropy.compute import next_token_nll
from blt.entropy.corpus import corpus_texts
from blt.entropy.io import build_entropy_model, save_entropy_model
from blt.entropy.transformer import TransformerEntropyConfig
from blt.tokens import PAD_ID, encode
from blt.train.objective import bits_per_byte, lr_at, target_byte_count


class TrainSettings(Config):
    """``[train]``: optimisation and evaluation."""

    steps: PositiveInt = 600
    lr: Annotated[float, Meta(gt=0)] = 3e-3
    min_lr_ratio: Annotated[float, Meta(ge=0, le=1)] = 0.1
    warmup: Annotated[int, Meta(ge=0)] = 30
    batch_size: PositiveInt = 8
    seq_len: PositiveInt = 512
    weight_decay: Annotated[float, Meta(ge=0)] = 0.01
    grad_clip: Annotated[float, Meta(gt=0)] = 1.0
    seed: int = 0
    eval_every: PositiveInt = 100
    eval_tokens: PositiveInt = 32768  # periodic evaluation uses the first this many held-out tokens
    threads: PositiveInt | None = None


class CorpusSettings(Config):
    """``[corpus]``: the built-in corpus (default) or text / JSONL files (``{"text": ...}`` per line)."""

    files: list[str] = []
    sources: list[str] | None = None  # built-in corpus sources (blt.corpus.SOURCES); None = all


class EntropyTrainRecipe(Config):
    """A ``blt train-entropy`` config file."""

    model: TransformerEntropyConfig | CNNEntropyConfig = msgspec.field(default_factory=TransformerEntropyConfig)
    train: TrainSettings = msgspec.field(default_factory=TrainSettings)
    corpus: CorpusSettings = msgspec.field(default_factory=CorpusSettings)
    out: str = "entropy-model.safetensors"


def token_stream(texts: list[str]) -> torch.Tensor:
    """Documents encoded with BOS/EOS and concatenated: ``LongTensor[L]``."""
    if not texts:
        return torch.zeros(0, dtype=torch.long)
    return torch.cat([encode(t) for t in texts])


def heldout_bpb(model: torch.nn.Module, stream_L: torch.Tensor, rows: int = 8, chunk: int = 512) -> float:
    """Bits per byte on a token stream, cut into ``rows`` contiguous rows each streamed with full context.

    Counted as the main model counts it (:mod:`blt.train.objective`): the summed NLL of every
    non-pad target over the number of those targets, BOS and EOS targets included in both.
    """
    n = (stream_L.numel() // rows) * rows
    if n < 2 * rows:
        rows, n = 1, stream_L.numel()
    tokens_RT = stream_L[:n].view(rows, -1)
    was_training = model.training
    model.eval()
    nll_RT = next_token_nll(model, tokens_RT, chunk=chunk)
    model.train(was_training)
    targets_RT = tokens_RT[:, 1:]
    return bits_per_byte(float(nll_RT[targets_RT != PAD_ID].sum()), target_byte_count(targets_RT))


def train_entropy_model(
    recipe: EntropyTrainRecipe, *, progress: bool = True, log: Callable[[str], None] = print
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train per ``recipe``; returns the model (eval mode) and a metrics/recipe dict for the sidecar."""
    s = recipe.train
    if s.threads:
        torch.set_num_threads(s.threads)
    torch.manual_seed(s.seed)
    train_texts, heldout_texts, corpus_desc = corpus_texts(recipe.corpus.files, recipe.corpus.sources)
    train_L, heldout_L = token_stream(train_texts), token_stream(heldout_texts)
    if train_L.numel() < s.seq_len + 2:
        raise InputError(f"training corpus has {train_L.numel()} tokens, fewer than seq_len + 2 = {s.seq_len + 2}; add text or lower seq_len")
    model = build_entropy_model(recipe.model).train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": s.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=s.lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(s.seed)
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("[bold]train-entropy"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(), disable=not progress) as bar:
        task = bar.add_task("train", total=s.steps, info="")
        for step in range(s.steps):
            offsets = torch.randint(0, train_L.numel() - s.seq_len - 1, (s.batch_size,), generator=gen)
            rows_BT = train_L[offsets[:, None] + torch.arange(s.seq_len + 1)]
            for group in opt.param_groups:
                group["lr"] = lr_at(step, lr=s.lr, warmup=s.warmup, total=s.steps, lr_min_ratio=s.min_lr_ratio)
            logits = model(rows_BT[:, :-1])
            loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), rows_BT[:, 1:].flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
            opt.step()
            info = f"loss {loss.item() / math.log(2):.3f} bits"
            if heldout_L.numel() and ((step + 1) % s.eval_every == 0 or step + 1 == s.steps):
                bpb = heldout_bpb(model, heldout_L[: s.eval_tokens])
                history.append({"step": step + 1, "heldout_bpb": round(bpb, 4), "seconds": round(time.perf_counter() - t0, 1)})
                info += f" | held-out {bpb:.3f} BPB"
                if not progress:
                    log(f"step {step + 1}: held-out {bpb:.3f} BPB")
            bar.update(task, advance=1, info=info)
    train_seconds = time.perf_counter() - t0
    model.eval()
    final = heldout_bpb(model, heldout_L) if heldout_L.numel() else float("nan")
    metrics = {
        "recipe": msgspec.to_builtins(recipe),
        "corpus": corpus_desc,
        "train_tokens": int(train_L.numel()),
        "heldout_tokens": int(heldout_L.numel()),
        "train_seconds": round(train_seconds, 1),
        "final_heldout_bpb": round(final, 4),
        "history": history,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    return model, metrics


def train_and_save(recipe: EntropyTrainRecipe, *, progress: bool = True, log: Callable[[str], None] = print) -> tuple[pathlib.Path, dict[str, Any]]:
    """Train, then write ``recipe.out`` (+ JSON sidecar with the recipe and metrics)."""
    model, metrics = train_entropy_model(recipe, progress=progress, log=log)
    return save_entropy_model(model, recipe.out, recipe=metrics), metrics
