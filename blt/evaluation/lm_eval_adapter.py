"""EleutherAI lm-evaluation-harness backend: ``BltLM``, an ``lm_eval.api.model.LM`` over a trained run.

>>> import lm_eval
>>> from lm_eval.tasks import TaskManager
>>> from blt.evaluation.lm_eval_adapter import BltLM
>>> lm_eval.simple_evaluate(model=BltLM("runs/tiny"), tasks=["my_task"], task_manager=TaskManager(include_path="tasks/"))

Registered with lm-eval as ``blt`` (``lm_eval --model blt --model_args path=RUN`` once this module
is imported). Text is UTF-8 bytes; every method works on bytes, so nothing depends on a tokenizer:

- ``loglikelihood``: ``(context, continuation)`` -> (sum of natural-log probabilities of the
  continuation's bytes given BOS + context, whether greedy decoding reproduces the continuation);
- ``loglikelihood_rolling``: ``(text,)`` -> the text's total log-likelihood (nats), BOS-prefixed,
  every byte scored exactly once in windows of the model's context (:meth:`Scorer.document_nats`).
  lm-eval's ``bits_per_byte`` is ``-sum(loglikelihood) / sum(utf-8 bytes) / ln 2`` and
  ``byte_perplexity`` is ``exp(-sum(loglikelihood) / sum(bytes))`` over the documents, so with one
  score per byte they are exactly the model's BPB on those documents (EOS is not scored);
  ``word_perplexity`` divides by lm-eval's whitespace word count instead;
- ``generate_until``: ``(context, gen_kwargs)`` -> text, from :func:`blt.generate.generate_detailed`
  (cached generation with on-the-fly patching when the patcher allows it, else the no-cache path,
  which gives the same bytes), cut before the stop strings of ``until``; ``max_gen_toks``
  is a limit in bytes (tokens are bytes here). A context longer than the model's keeps its last
  ``seq_len - 1`` bytes, as lm-eval's own backends truncate from the left. ``speculative=K``
  (``--model_args path=RUN,speculative=8``) decodes with exact self-speculative decoding.

Results do not depend on batch composition or request order; sampling (``do_sample``) is seeded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from blt.core.errors import InputError, UnavailableError


class LmEvalUnavailable(UnavailableError, ImportError):
    """lm-evaluation-harness is missing or broken (one line; also an ImportError)."""


try:
    from lm_eval.api.model import LM
    from lm_eval.api.registry import register_model
except ImportError as _exc:
    if getattr(_exc, "name", None) in ("lm_eval", "lm_eval.api", "lm_eval.api.model", "lm_eval.api.registry"):
        raise LmEvalUnavailable("lm-evaluation-harness is not installed: pip install 'blt-lab[eval]'") from None
    raise LmEvalUnavailable(f"lm-evaluation-harness could not be imported ({_exc}); reinstall it: "
                            "pip install --force-reinstall 'blt-lab[eval]'") from None

from blt.evaluation.score import Scorer  # noqa: E402 - after the lm-eval check so its absence is the error

# Generation options lm-eval may pass (after lm_eval.models.utils.normalize_gen_kwargs).
GEN_KWARGS = ("until", "max_gen_toks", "do_sample", "temperature", "top_k", "top_p", "seed")


@register_model("blt")
class BltLM(LM):
    """lm-eval model over a blt-lab run directory, export, training checkpoint or a :class:`Scorer`.

    ``batch_size``: rows per forward pass (lm-eval may pass ``"auto"``, taken as the default);
    ``max_gen_toks``: default byte budget of ``generate_until``; ``seed``: sampling seed when a
    task asks for ``do_sample``; ``progress``: rich progress bars on stderr; ``cache``: cached
    generation (None: whenever the patcher can patch on the fly); ``speculative``: exact
    self-speculative decoding drafting up to this many bytes past each patch boundary
    (:mod:`blt.generate.speculative`; needs cached generation): greedy outputs are the same bytes,
    sampled ones follow the same distribution but are other draws than without it.
    """

    def __init__(self, path: str | Path | Scorer | None = None, *, scorer: Scorer | None = None,
                 batch_size: int | str | None = 8, max_batch_size: int | None = None, device: str | None = None,
                 max_gen_toks: int = 256, seed: int = 0, progress: bool = True, cache: bool | None = None,
                 speculative: int | None = None) -> None:
        super().__init__()
        if isinstance(path, Scorer):
            path, scorer = None, path
        if (path is None) == (scorer is None):
            raise InputError("BltLM needs exactly one of a run/export/checkpoint path or a Scorer")
        self.source = str(path) if path is not None else None
        self.scorer = scorer if scorer is not None else load_scorer(path)
        if device:
            self.scorer.model.to(_device(device))
        self.batch_size = _positive_int(batch_size, "batch_size", default=8)
        if max_batch_size is not None:
            self.batch_size = min(self.batch_size, _positive_int(max_batch_size, "max_batch_size", default=self.batch_size))
        self.max_gen_toks = _positive_int(max_gen_toks, "max_gen_toks", default=256)
        self.seed = int(seed)
        self.progress = bool(progress)
        self.cache = cache
        self.speculative = None if speculative in (None, 0, "0", "") else _positive_int(speculative, "speculative", default=1)
        if self.speculative is not None and not self._use_cache():
            raise InputError("speculative decoding needs cached generation, and this model's patcher cannot patch on the "
                             "fly (or cache=False was given); drop speculative")

    # -- lm-eval's three request types -------------------------------------------------------------

    def loglikelihood(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """``Instance.args == (context, continuation)`` -> ``(sum of log-probs in nats, is_greedy)``."""
        args = [req.args for req in requests]
        pairs = [(_utf8(ctx), _utf8(cont)) for ctx, cont in args]
        with self._progress("loglikelihood", disable_tqdm) as bar:
            scored = self.scorer.loglikelihood(pairs, batch_size=self.batch_size, progress=bar)
        out = [(float(ll), bool(greedy)) for ll, greedy in scored]
        for arg, result in zip(args, out, strict=True):
            self.cache_hook.add_partial("loglikelihood", arg, result)
        return out

    def loglikelihood_rolling(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[float]:
        """``Instance.args == (text,)`` -> total log-likelihood of the text's bytes (nats, <= 0)."""
        texts = [req.args[0] for req in requests]
        docs = [_utf8(t) for t in texts]
        with self._progress("loglikelihood_rolling", disable_tqdm) as bar:
            nats = self.scorer.document_nats(docs, batch_size=self.batch_size, progress=bar)
        out = []
        for text, doc, per_byte in zip(texts, docs, nats, strict=True):
            if len(per_byte) != len(doc):  # lm-eval divides by the UTF-8 byte count: one score per byte
                raise RuntimeError(f"document_nats returned {len(per_byte)} scores for a {len(doc)}-byte document")
            ll = -float(per_byte.sum())
            self.cache_hook.add_partial("loglikelihood_rolling", (text,), ll)
            out.append(ll)
        return out

    def generate_until(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[str]:
        """``Instance.args == (context, gen_kwargs)`` -> the generated text, cut before the stop strings."""
        from blt.generate import generate_detailed

        args = [req.args for req in requests]
        options = [self._generation_options(kwargs) for _, kwargs in args]
        prompts = [self._prompt(ctx) for ctx, _ in args]
        groups: dict[str, list[int]] = {}
        for i, opts in enumerate(options):  # one generate call per batch needs one set of options
            groups.setdefault(json.dumps({k: v for k, v in opts.items() if k != "until"}, sort_keys=True), []).append(i)
        out: list[str | None] = [None] * len(args)
        done = 0
        with self._progress("generate_until", disable_tqdm) as bar:
            for members in groups.values():
                sampled = options[members[0]]["temperature"] > 0
                if not sampled:  # greedy rows are independent of their batch: batch similar lengths together
                    members.sort(key=lambda i: (-len(prompts[i]), i))
                for start in range(0, len(members), self.batch_size):
                    chunk = members[start : start + self.batch_size]
                    opts = options[chunk[0]]
                    # sampled rows keep the group's order; row_offset seeds row j of the group from
                    # (seed, j), so the samples do not depend on the batch size
                    result = generate_detailed(
                        self.scorer.model, self.scorer.patcher, [prompts[i] for i in chunk],
                        max_new_bytes=opts["max_gen_toks"], temperature=opts["temperature"], top_k=opts["top_k"],
                        top_p=opts["top_p"], seed=opts["seed"], stop_at_eos=True, cache=self._use_cache(),
                        row_offset=start, speculative=self.speculative)
                    for i, generated in zip(chunk, result.outputs, strict=True):
                        text = cut_at_stop(generated, options[i]["until"]).decode("utf-8", errors="replace")
                        out[i] = text
                        self.cache_hook.add_partial("generate_until", args[i], text)
                    done += len(chunk)
                    if bar is not None:
                        bar(done, len(args))
        assert all(text is not None for text in out)
        return out  # type: ignore[return-value]

    # -- helpers -------------------------------------------------------------------------------------

    def get_model_info(self) -> dict[str, Any]:
        """Recorded by ``simple_evaluate`` in ``results["config"]``."""
        config = self.scorer.config
        info: dict[str, Any] = {"blt_source": self.source, "seq_len": int(self.scorer.seq_len)}
        if config is not None:
            info.update(blt_model=getattr(config.model, "kind", None), blt_patcher=getattr(config.patcher, "kind", None))
        return info

    def _prompt(self, context: str) -> bytes:
        data = _utf8(context)
        if not data:
            raise InputError("generate_until needs a non-empty context: a BLT does not generate from BOS alone")
        keep = max(1, int(self.scorer.seq_len) - 1)  # BOS + the last seq_len - 1 bytes fill the context
        return data[-keep:]

    def _generation_options(self, gen_kwargs: Any) -> dict[str, Any]:
        from lm_eval.models.utils import normalize_gen_kwargs

        if not isinstance(gen_kwargs, dict):
            raise InputError(f"generate_until expects a dict of generation options, got {type(gen_kwargs).__name__}")
        unknown = sorted(set(gen_kwargs) - set(GEN_KWARGS) - {"max_new_tokens", "max_tokens", "max_completion_tokens"})
        if unknown:
            raise InputError(f"unsupported generation option(s) {', '.join(unknown)}; BltLM supports {', '.join(GEN_KWARGS)}")
        kw = normalize_gen_kwargs(gen_kwargs, self.max_gen_toks)
        until = kw.get("until") or []
        if isinstance(until, str):
            until = [until]
        sample = bool(kw.get("do_sample"))
        return {
            "until": [s.encode("utf-8") for s in until if s],
            "max_gen_toks": _positive_int(kw["max_gen_toks"], "max_gen_toks", default=self.max_gen_toks),
            "temperature": float(kw.get("temperature") or 0.0) if sample else 0.0,
            "top_k": kw.get("top_k") if sample else None,
            "top_p": kw.get("top_p") if sample else None,
            "seed": int(kw.get("seed", self.seed)) if sample else None,
        }

    def _use_cache(self) -> bool:
        if self.cache is not None:
            return self.cache
        from blt.generate.patch_starts import cached_patching_problem

        return cached_patching_problem(self.scorer.patcher) is None

    @contextmanager
    def _progress(self, what: str, disabled: bool) -> Iterator[Callable[[int, int], None] | None]:
        """A rich progress bar on stderr; yields ``update(done, total)`` (None when off). Scoring
        counts windows (rows of at most ``seq_len``), generation counts requests."""
        from rich.console import Console

        console = Console(stderr=True)
        if not self.progress or disabled or not console.is_terminal:  # bars only where someone watches
            yield None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        with Progress(TextColumn(f"[bold]lm-eval {what}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TimeRemainingColumn(), console=console, transient=True) as progress:
            task = progress.add_task(what, total=None)
            yield lambda done, total: progress.update(task, completed=done, total=total)


def load_scorer(path: str | Path) -> Scorer:
    """A :class:`Scorer` for a run directory, its export, a training checkpoint or a converted
    Hugging Face BLT checkpoint, loaded as ``blt generate`` loads it (an entropy patcher's relative
    model path is also looked up next to the checkpoint); rows are the model's context long."""
    from blt.generate.checkpoint import load_generator

    loaded = load_generator(path)
    if loaded.context is None:
        raise InputError(f"{path}: the checkpoint does not say its context length (max_position_embeddings)")
    return Scorer(loaded.config, loaded.patcher, loaded.model, seq_len=int(loaded.context))


def _device(name: str) -> Any:
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"device {name!r} is not a torch device: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UnavailableError(f"device {name!r} asked for, but CUDA is not available here")
    return device


def cut_at_stop(generated: bytes, stops: Sequence[bytes]) -> bytes:
    """``generated`` cut before each stop string in turn (``s = s.split(stop)[0]`` per stop, the rule
    of lm-eval's own backends). Cutting UTF-8 bytes equals cutting the text: UTF-8 is
    self-synchronising, so a character sequence occurs in a text exactly where its bytes occur."""
    for stop in stops:
        generated = generated.split(stop, 1)[0]
    return generated


def _utf8(text: Any) -> bytes:
    if not isinstance(text, str):
        raise InputError(f"lm-eval requests carry text, got {type(text).__name__}")
    return text.encode("utf-8", errors="surrogateescape")


def _positive_int(value: Any, name: str, *, default: int) -> int:
    if value is None or value == "auto" or (isinstance(value, str) and value.startswith("auto")):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a positive integer, got {value!r}") from None
    if isinstance(value, bool) or number < 1 or (isinstance(value, float) and number != value):
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return number


__all__ = ["BltLM", "LmEvalUnavailable", "cut_at_stop"]
