"""The attention-backend contract suite: ``eager`` is the oracle.

- ``available``: when ``is_available()`` gives a reason, building refuses with ``UnavailableError``
  (never another crash) and every other contract is reported skipped, "unavailable: <reason>";
- ``mask_kinds``: the spec and the built backend declare the same kinds, all of them known;
- ``equals_eager[KIND]``, one per declared kind: on masks described by :mod:`blt.attention.masks`
  from random patch layouts (ragged rows, documents, windows, slots), outputs and the gradients
  of q, k, v equal ``eager``'s (float32, tight tolerance); rows with no allowed key are zeros;
- ``refuses_undeclared``: a mask of a kind it does not declare raises ``UnavailableError``.

Backward is compared when ``can_train(device)`` is None. A backend that cannot train on the
device (FlexAttention on CPU) has its ``equals_eager`` contracts skipped with the reason, unless
``backward=False`` asks for the forward comparison alone. On CUDA, a backend that refuses
float32 inputs (flash-attn) is compared in bfloat16, with bfloat16 tolerances.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
from hypothesis import strategies as st

from blt.core.errors import UnavailableError
from blt.core.patching import lengths_from_starts
from blt.core.specs import AttentionSpec
from blt.attention import masks
from blt.attention.backend import bind
from blt.model.layout import PatchLayout
from blt.testing.results import ContractResult, raise_failures
from blt.testing.search import search, single_threaded
from blt.tokens import EOS_ID, OFFSET, VOCAB_SIZE

DEFAULT_EXAMPLES = 20
TOLERANCE = {torch.float32: dict(atol=2e-5, rtol=1e-4), torch.bfloat16: dict(atol=3e-2, rtol=3e-2),
             torch.float16: dict(atol=5e-3, rtol=5e-3)}


@attrs.frozen
class MaskCase:
    """One attention call: a random patch layout, the mask of ``kind`` over it, and q, k, v shapes."""

    kind: str
    seed: int
    batch: int
    n_bytes: int
    heads: int
    head_dim: int
    window: int | None
    k: int
    block_documents: bool
    p_eos: float

    def layout(self, device: torch.device | str = "cpu") -> PatchLayout:
        return random_layout(self.seed, self.batch, self.n_bytes, self.p_eos, device)

    def mask(self, device: torch.device | str = "cpu") -> masks.MaskDescription:
        return describe(self.kind, self.layout(device), window=self.window, k=self.k, block_documents=self.block_documents)

    def __str__(self) -> str:
        return (f"{self.kind} mask over B={self.batch} rows of N={self.n_bytes} bytes (layout seed {self.seed}, "
                f"window={self.window}, k={self.k}, block_documents={self.block_documents}, p_eos={self.p_eos}), "
                f"H={self.heads}, D={self.head_dim}")


def random_layout(seed: int, batch: int, n_bytes: int, p_eos: float = 0.1, device: torch.device | str = "cpu",
                  p_start: float = 0.3) -> PatchLayout:
    """A valid random :class:`PatchLayout`: byte tokens with EOS sprinkled in, patch lengths summing
    to N + 1 with BOS alone, rows with different patch counts (right-padded)."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(OFFSET, VOCAB_SIZE, (batch, n_bytes), generator=g)
    tokens[torch.rand(batch, n_bytes, generator=g) < p_eos] = EOS_ID
    starts = torch.rand(batch, n_bytes + 1, generator=g) < p_start
    starts[:, : min(2, n_bytes + 1)] = True
    return PatchLayout.from_lengths(tokens.to(device), lengths_from_starts(starts).to(device))


def describe(kind: str, layout: PatchLayout, *, window: int | None = None, k: int = 2,
             block_documents: bool = True) -> masks.MaskDescription:
    """The mask of ``kind`` for ``layout``, built with the model's own helpers (cross-attention
    masks read a window of at least one patch)."""
    if kind == masks.LOCAL_BLOCK_CAUSAL:
        return masks.local_block_causal(layout, window, block_documents)
    if kind in (masks.PATCH_CAUSAL, masks.PATCH_BLOCK_CAUSAL):
        return masks.patch_causal(layout, kind == masks.PATCH_BLOCK_CAUSAL)
    if kind == masks.BYTE_TO_PATCH:
        return masks.byte_to_patch(layout, k, window or 1)
    if kind == masks.PATCH_TO_BYTE:
        return masks.patch_to_byte(layout, k, window or 1)
    raise ValueError(f"unknown mask kind {kind!r}; known: {', '.join(sorted(masks.MASK_KINDS))}")


def mask_cases(kind: str) -> st.SearchStrategy[MaskCase]:
    """Small random cases of one mask kind (shrinks towards one short row, one head)."""
    return st.builds(MaskCase, kind=st.just(kind), seed=st.integers(0, 10**6), batch=st.integers(1, 3),
                     n_bytes=st.integers(1, 64), heads=st.integers(1, 3), head_dim=st.sampled_from([8, 16]),
                     window=st.one_of(st.none(), st.integers(1, 6)), k=st.integers(1, 3),
                     block_documents=st.booleans(), p_eos=st.sampled_from([0.0, 0.1, 0.3]))


def _eager() -> Any:
    from blt.plugins.attention.eager import EagerAttention

    return EagerAttention()


def _run(backend: Any, case: MaskCase, device: str, dtype: torch.dtype, backward: bool) -> tuple[torch.Tensor, tuple]:
    """Output and (dq, dk, dv) of ``backend`` on ``case`` (inputs drawn in float32, cast to ``dtype``)."""
    desc = case.mask(device)
    _, Q, K = desc.shape
    g = torch.Generator().manual_seed(case.seed + 1)
    q, k, v = (torch.randn(case.batch, case.heads, n, case.head_dim, generator=g).to(device, dtype) for n in (Q, K, K))
    if backward:
        q, k, v = (t.requires_grad_() for t in (q, k, v))
    with torch.set_grad_enabled(backward):
        o = bind(backend, desc)(q, k, v)
        if not backward:
            return o.detach().float(), ()
        grad_out = torch.randn(o.shape, generator=torch.Generator().manual_seed(case.seed + 2)).to(device, dtype)
        grads = torch.autograd.grad((o * grad_out).sum(), (q, k, v), allow_unused=True)
    # an input that does not reach the output has gradient zero (None here)
    return o.detach().float(), tuple(torch.zeros_like(x) if g is None else g.float() for x, g in zip((q, k, v), grads))


def _mismatch(name: str, got: torch.Tensor, want: torch.Tensor, tol: dict[str, float]) -> str | None:
    if got.shape != want.shape:
        return f"{name}: shape {list(got.shape)}, eager's is {list(want.shape)}"
    if not bool(torch.isfinite(got).all()):
        return f"{name}: non-finite values"
    if torch.allclose(got, want, **tol):
        return None
    err = (got - want).abs()
    where = [int(i) for i in torch.unravel_index(err.argmax(), err.shape)]
    return (f"{name} differs from eager by up to {float(err.max()):.3g} (at index {where}: {float(got[tuple(where)]):.6g} "
            f"vs {float(want[tuple(where)]):.6g}; tolerance atol={tol['atol']}, rtol={tol['rtol']})")


def equivalence_violation(backend: Any, case: MaskCase, *, device: str = "cpu", dtype: torch.dtype = torch.float32,
                          backward: bool = True) -> str | None:
    """How ``backend`` differs from ``eager`` on ``case`` (outputs, then gradients), or None."""
    o, grads = _run(backend, case, device, dtype, backward)
    o_ref, grads_ref = _run(_eager(), case, device, torch.float32, backward)
    tol = TOLERANCE[dtype]
    found = _mismatch("output", o, o_ref, tol)
    for name, got, want in zip(("grad q", "grad k", "grad v"), grads, grads_ref):
        found = found or _mismatch(name, got, want, tol)
    return found


@attrs.define
class AttentionSubject:
    """A backend under test: its spec (when registered), config and the built backend."""

    name: str
    spec: AttentionSpec | None
    config: Any
    backend: Any = None

    def unavailable(self) -> str | None:
        return self.spec.is_available() if self.spec is not None else None

    def can_train(self, device: str) -> str | None:
        if self.spec is not None:
            return self.spec.can_train(device)
        return self.backend.can_train(device)

    def build(self) -> Any:
        if self.backend is None:
            self.backend = self.spec.build(self.config)
        return self.backend


def resolve_attention(target: Any, *, registry: Any = None, config: Any = None) -> AttentionSubject:
    """A registered kind, an ``AttentionSpec`` or a built backend (``prepare``/``attend``/``mask_kinds``)."""
    if isinstance(target, AttentionSubject):
        return target
    if isinstance(target, str):
        if registry is None:
            import blt

            registry = blt.make_registry()
        spec = registry.spec("attention", target, path="$.attention")
        data = {"kind": target, **(config or {})} if isinstance(config, dict) or config is None else config
        return AttentionSubject(target, spec, registry.config("attention", data, path="$.attention"))
    if isinstance(target, AttentionSpec):
        cfg = config if config is not None and not isinstance(config, dict) else target.config_type(**(config or {}))
        return AttentionSubject(target.name, target, cfg)
    if all(hasattr(target, a) for a in ("prepare", "attend", "mask_kinds")):
        return AttentionSubject(getattr(target, "name", type(target).__name__), None, None, target)
    raise TypeError(f"expected an attention kind, an AttentionSpec or a backend object, got {type(target).__name__}")


def _undeclared_violation(backend: Any, kinds: list[str]) -> str | None:
    layout = random_layout(0, 2, 12)
    for kind in kinds:
        desc = describe(kind, layout, window=3)
        try:
            prepared = backend.prepare(desc)
            q = torch.randn(2, 1, desc.shape[1], 8)
            kv = torch.randn(2, 1, desc.shape[2], 8)
            backend.attend(q, kv, kv, prepared)
        except UnavailableError:
            continue
        except Exception as exc:
            return f"mask kind {kind!r}, which it does not declare, raised {type(exc).__name__}: {exc} instead of UnavailableError"
        return (f"accepted mask kind {kind!r}, which it does not declare (refuse it with UnavailableError, e.g. "
                "blt.attention.backend.check_kind in prepare)")
    return None


def _pick_dtype(backend: Any, device: str, backward: bool) -> tuple[torch.dtype | None, str]:
    """float32, or on CUDA bfloat16 when the backend refuses float32; (None, reason) when neither runs."""
    probe = MaskCase(sorted(backend.mask_kinds)[0], 0, 1, 8, 1, 16, 3, 1, True, 0.0)
    reason = ""
    for dtype in (torch.float32, torch.bfloat16) if torch.device(device).type == "cuda" else (torch.float32,):
        try:
            _run(backend, probe, device, dtype, backward)
            return dtype, "" if dtype == torch.float32 else f" (bfloat16: float32 refused: {reason})"
        except UnavailableError as exc:
            reason = str(exc)
        except Exception:  # a bug, not a refusal: the equivalence search reports it with its case
            return dtype, ""
    return None, reason


@single_threaded
def run_attention_contracts(target: Any, *, registry: Any = None, config: Any = None, max_examples: int = DEFAULT_EXAMPLES,
                            device: str = "cpu", backward: bool | None = None) -> list[ContractResult]:
    """Run every attention contract on a kind, spec or backend (see the module docstring).

    ``backward``: None compares gradients when the backend can train on ``device`` and skips the
    equivalence contracts otherwise; False compares outputs only; True requires backward."""
    subject = resolve_attention(target, registry=registry, config=config)
    declared = sorted(subject.spec.mask_kinds if subject.spec is not None else subject.backend.mask_kinds)
    reason = subject.unavailable()
    if reason is not None:
        try:
            subject.build()
        except UnavailableError:
            pass
        except Exception as exc:
            return [ContractResult("available", False, f"is_available() says {reason!r}, but building raised "
                                   f"{type(exc).__name__}: {exc} instead of UnavailableError")]
        skipped = [ContractResult.skip(n, f"unavailable: {reason}") for n in
                   ("mask_kinds", *(f"equals_eager[{k}]" for k in declared), "refuses_undeclared")]
        return [ContractResult.skip("available", f"unavailable: {reason}"), *skipped]
    backend = subject.build()
    results = [ContractResult("available", True, "is_available() is None: builds and runs here")]
    own = frozenset(backend.mask_kinds)
    unknown = sorted(own - masks.MASK_KINDS)
    if subject.spec is not None and frozenset(subject.spec.mask_kinds) != own:
        results.append(ContractResult("mask_kinds", False, f"the spec declares {sorted(subject.spec.mask_kinds)} but the "
                                      f"backend's mask_kinds are {sorted(own)}; declare them in one place"))
    elif unknown:
        results.append(ContractResult("mask_kinds", False, f"unknown mask kind(s) {unknown}; known: {sorted(masks.MASK_KINDS)}"))
    else:
        results.append(ContractResult("mask_kinds", True, f"declares {', '.join(declared)}"))
    results += _equivalence_results(subject, backend, declared, max_examples, device, backward)
    missing = sorted(masks.MASK_KINDS - own)
    problem = _undeclared_violation(backend, missing) if missing else None
    results.append(ContractResult("refuses_undeclared", problem is None,
                                  problem or (f"refuses {', '.join(missing)} with UnavailableError" if missing
                                              else "declares every mask kind")))
    return results


def _equivalence_results(subject: AttentionSubject, backend: Any, declared: list[str], max_examples: int, device: str,
                         backward: bool | None) -> list[ContractResult]:
    names = [f"equals_eager[{kind}]" for kind in declared]
    no_train = subject.can_train(device)
    if backward is None and no_train is not None:
        why = (f"cannot train on {device}: {no_train} (backward=False / blt check-plugin --forward-only compares "
               "forward outputs alone)")
        return [ContractResult.skip(name, why) for name in names]
    if backward and no_train is not None:
        return [ContractResult(name, False, f"backward required, but it cannot train on {device}: {no_train}") for name in names]
    with_grad = no_train is None and backward is not False
    dtype, note = _pick_dtype(backend, device, with_grad)
    if dtype is None:
        return [ContractResult.skip(name, f"unavailable on {device}: {note}") for name in names]
    what = "outputs and q/k/v gradients" if with_grad else "outputs (forward only)"
    results = []
    for kind, name in zip(declared, names):
        found = search(lambda case: equivalence_violation(backend, case, device=device, dtype=dtype, backward=with_grad),
                       mask_cases(kind), max_examples)
        if found is None:
            results.append(ContractResult(name, True, f"{what} equal eager's{note}"))
        else:
            case, message = found
            results.append(ContractResult(name, False, f"{message}; case: {case}", case))
    return results


def check_attention(target: Any, **kwargs: Any) -> list[ContractResult]:
    """:func:`run_attention_contracts`, raising ``AssertionError`` listing each failed contract."""
    subject = resolve_attention(target, registry=kwargs.pop("registry", None), config=kwargs.pop("config", None))
    return raise_failures("attention backend", subject.name, run_attention_contracts(subject, **kwargs))


__all__ = ["MaskCase", "check_attention", "describe", "equivalence_violation", "mask_cases", "random_layout",
           "run_attention_contracts"]
