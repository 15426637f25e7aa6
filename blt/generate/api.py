"""``generate``: continue prompts with a BLT, cached (patching on the fly) or recomputing everything.

>>> outputs = generate(model, patcher, ["The cat ", "Once"], max_new_bytes=64)           # greedy
>>> outputs = generate(model, patcher, ["Hi"], max_new_bytes=64, temperature=0.8, top_p=0.9, seed=1)

Rows are independent: a row's output depends only on its prompt, the model, the patcher and the
sampling parameters (row b has its own random stream seeded from ``(seed, b)``), never on its
batch-mates. Rows may have different prompt lengths; each stops at its own EOS or byte budget.
"""

from __future__ import annotations

from typing import Any

import torch

from blt.core.errors import InputError, UnavailableError
from blt.generate.outputs import GenerationResult, RowOutputs, StreamCallback
from blt.generate.prompts import prompt_tokens
from blt.generate.sampling import Sampler, SamplingParams


def generate_detailed(
    model: torch.nn.Module,
    patcher: Any,
    prompts: Any,
    *,
    max_new_bytes: int = 256,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    stop_at_eos: bool = True,
    cache: bool = True,
    stream: StreamCallback | None = None,
    context: int | None = None,
    keep_logits: bool = False,
    row_offset: int = 0,
    speculative: int | None = None,
) -> GenerationResult:
    """Like :func:`generate`, returning a :class:`GenerationResult` (new token ids, optionally the
    logits of every step, patches per row). ``row_offset``: the index of the first prompt for
    seeding (row b draws from stream ``(seed, row_offset + b)``), so a long list generated in
    chunks samples exactly as one batch would. ``speculative=K``: exact self-speculative decoding
    drafting up to K bytes past each patch boundary (:mod:`blt.generate.speculative`); the result's
    ``speculation`` holds each row's acceptance and global-call counts."""
    params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    if isinstance(max_new_bytes, bool) or not isinstance(max_new_bytes, int) or max_new_bytes < 1:
        raise InputError(f"max_new_bytes must be an integer >= 1, got {max_new_bytes!r}")
    if isinstance(row_offset, bool) or not isinstance(row_offset, int) or row_offset < 0:
        raise InputError(f"row_offset must be an integer >= 0, got {row_offset!r}")
    if speculative is not None:
        if isinstance(speculative, bool) or not isinstance(speculative, int) or speculative < 1:
            raise InputError(f"speculative must be an integer >= 1 (bytes drafted per round), got {speculative!r}")
        if not cache:
            raise InputError("speculative decoding works on the cache; drop --no-cache (cache=False) or --speculative")
    ids = prompt_tokens(prompts, context, patcher)
    check_patcher(patcher, cache)
    rows = RowOutputs(len(ids), max_new_bytes, stop_at_eos, Sampler(params, len(ids), row_offset), stream, keep_logits)
    with torch.inference_mode():
        if speculative is not None:
            from blt.generate.speculative import run_speculative

            patches, stats = run_speculative(model, patcher, ids, max_new_bytes, rows, speculative)
            return rows.result(patches, stats)
        if cache:
            from blt.generate.cached import run_cached

            patches = run_cached(model, patcher, ids, max_new_bytes, rows)
            return rows.result(patches)
        from blt.generate.nocache import run_nocache

        run_nocache(model, patcher, ids, rows)
        return rows.result()


def generate(model: torch.nn.Module, patcher: Any, prompts: Any, *, max_new_bytes: int = 256, temperature: float = 0.0,
             top_k: int | None = None, top_p: float | None = None, seed: int | None = None, stop_at_eos: bool = True,
             cache: bool = True, stream: StreamCallback | None = None, context: int | None = None,
             row_offset: int = 0, speculative: int | None = None) -> list[bytes]:
    """Continue each prompt by up to ``max_new_bytes`` bytes; returns the new bytes of each row.

    ``prompts``: a list of ``str`` / ``bytes`` / token-id sequences (starting with BOS), or a
    LongTensor ``[B, N]``. ``temperature`` 0 is greedy; ``top_k``, ``top_p`` and ``seed`` shape
    sampling. ``stop_at_eos``: a row stops at EOS (not included in its output). ``cache=True``
    patches on the fly with KV caches (constant work per byte; needs an incremental patcher or one with a
    ``start_stepper``, as ``bpe`` has for its delimited stream);
    ``cache=False`` recomputes everything per byte (the reference's method, the oracle).
    ``stream(row, new_bytes)`` is called as bytes are produced. ``context``: refuse prompts longer
    than this many tokens (BOS included); see :mod:`blt.generate.prompts`. ``row_offset``: see
    :func:`generate_detailed`. ``speculative=K``: exact self-speculative decoding (same greedy
    output, fewer global-model calls; rows run one at a time), see :mod:`blt.generate.speculative`.
    """
    return generate_detailed(model, patcher, prompts, max_new_bytes=max_new_bytes, temperature=temperature, top_k=top_k,
                             top_p=top_p, seed=seed, stop_at_eos=stop_at_eos, cache=cache, stream=stream,
                             context=context, row_offset=row_offset, speculative=speculative).outputs


def check_patcher(patcher: Any, cache: bool) -> None:
    """Refuse cached generation with a patcher that cannot patch on the fly (not incremental and no
    ``start_stepper``), and an entropy patcher without its model."""
    from blt.generate.patch_starts import cached_patching_problem, patcher_name

    problem = cached_patching_problem(patcher) if cache else None
    if problem is not None:
        raise UnavailableError(problem)
    if hasattr(patcher, "model_path") and hasattr(patcher, "compute_entropies"):
        from blt.entropy.io import EntropyModelError

        try:
            patcher.model  # noqa: B018 - loads the entropy model (once) so a missing one fails here
        except EntropyModelError as exc:
            raise InputError(f"the {patcher_name(patcher)} patcher needs an entropy model and none could be loaded: {exc}") from None
