"""The encoder and decoder contract suites: a component inside a small BLT with builtin partners.

The encoder under test is paired with the builtin ``cross_attention`` decoder, the decoder under
test with the builtin ``cross_attention`` encoder (``partner=`` picks another), in a BLT small
enough to run in milliseconds (``d_local`` 16, one global layer), in float64 with the ``sdpa``
backend (``eager`` for FLOPs, which computes every masked pair as ``FlopCounterMode`` counts it).

- ``mask_kinds``: every mask it describes has a kind it declares, declared in one place (the
  spec's kinds are the module's);
- ``causality``: changing the bytes after t (patches recomputed by the incremental ``space`` or
  ``strided`` patcher) leaves the logits at positions <= t unchanged;
- ``batch_consistency``: a row alone gives the logits it gives inside a batch whose other rows
  have other lengths and other padding;
- ``deterministic``: the same batch twice gives identical logits; the input is not modified;
- ``cached_step``: ``generate_detailed(cache=True)`` gives the logits of ``cache=False`` at every
  step. A component without a step passes with a note when cached generation refuses it with
  ``UnavailableError`` saying so (``--no-cache`` still works); a step that disagrees fails;
- ``speculative_step``: greedy ``generate_detailed(speculative=3)`` gives the bytes of plain cached
  generation, with its logits (drafts are rewound through the step's ``snapshot``/``restore``;
  a step without them passes with a note when speculative decoding refuses it saying so; one that
  inherits them but keeps state of its own that they miss fails here);
- ``flops``: ``module.flops(n_bytes, n_patches, attention="dense")`` is within 2% of what
  ``torch.utils.flop_counter.FlopCounterMode`` counts for the module's own forward;
- ``gradients``: every parameter of the component gets a finite gradient from the loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import torch
from hypothesis import strategies as st

from blt.core.config import ComponentConfig
from blt.core.errors import UnavailableError
from blt.model.layout import PatchLayout
from blt.testing import model_inputs as mi
from blt.testing.model_checks import FLOP_TOLERANCE, flops_mismatch, gradient_problem, logits_mismatch
from blt.testing.model_inputs import PARTNERS, SHRINK, SMALL_MODEL
from blt.testing.results import ContractResult, raise_failures
from blt.testing.search import search, single_threaded
from blt.tokens import EOS_ID, encode

DEFAULT_EXAMPLES = 25
PATCHERS = ({"kind": "space", "max_patch_length": 4}, {"kind": "strided", "patch_size": 3})
#: Prompts of different lengths; the last (token ids) holds an EOS, so a document boundary is crossed.
PROMPTS = ("The cat sat", "Once", (*encode("ab. c", eos=True).tolist(), *encode("d e").tolist()))
FLOP_ROWS = ("The quick brown fox jumps over the lazy dog, twice.", "a b\n")
FAMILY = {"encoder": "encoders", "decoder": "decoders"}
OTHER = {"encoder": "decoder", "decoder": "encoder"}


@attrs.define
class ComponentSubject:
    """An encoder or decoder kind, the small BLT it is checked in, and that BLT's patchers."""

    role: str  # "encoder" or "decoder"
    name: str
    registry: Any
    experiment: dict[str, Any]
    device: str = "cpu"
    _cache: dict[Any, Any] = attrs.field(factory=dict)

    @property
    def spec(self) -> Any:
        return self.registry.spec(FAMILY[self.role], self.name, path=f"$.{self.role}")

    def model(self, attention: str = "sdpa", dtype: torch.dtype = torch.float64, fresh: bool = False) -> torch.nn.Module:
        """The small BLT (same weights every time: built under a fixed seed), in eval mode."""
        key = (attention, dtype)
        if fresh or key not in self._cache:
            import blt

            data = {**self.experiment, "attention": {"kind": attention}}
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model = blt.build_model(data, registry=self.registry).to(self.device, dtype).eval()
            if fresh:
                return model
            self._cache[key] = model
        return self._cache[key]

    def module(self, model: torch.nn.Module) -> torch.nn.Module:
        return getattr(model, self.role)

    def patchers(self) -> list[Any]:
        if "patchers" not in self._cache:
            self._cache["patchers"] = [self.registry.build_patcher(p) for p in PATCHERS]
        return self._cache["patchers"]

    def logits(self, ids: Any, patcher: Any = None, model: torch.nn.Module | None = None) -> torch.Tensor:
        tokens = ids if isinstance(ids, torch.Tensor) else torch.tensor([list(ids)], dtype=torch.long)
        tokens = tokens.to(self.device)
        lengths = mi.model_patches(patcher or self.patchers()[0], tokens)
        with torch.no_grad():
            return (model or self.model())(tokens, lengths)


def _section(spec: Any, kind: str, config: Any) -> Any:
    if isinstance(config, ComponentConfig):
        return config
    fields = set(spec.config_type.__struct_fields__)
    given = dict(config or {})
    return {**{k: v for k, v in SHRINK.items() if k in fields and k not in given}, **given, "kind": kind}


def resolve_component(role: str, target: Any, *, registry: Any = None, config: Any = None, partner: Any = None,
                      device: str = "cpu") -> ComponentSubject:
    """The subject for a registered encoder/decoder kind (or its spec, registered in ``registry``).

    ``config``: the component's table (dict of fields, or its config struct); default: its
    default config with :data:`SHRINK` applied. ``partner``: the other side's table."""
    if isinstance(target, ComponentSubject):
        return target
    if role not in FAMILY:
        raise ValueError(f"role must be 'encoder' or 'decoder', got {role!r}")
    if registry is None:
        import blt

        registry = blt.make_registry()
    name = target if isinstance(target, str) else getattr(target, "name", None)
    if not isinstance(name, str):
        raise TypeError(f"expected a {role} kind or spec, got {type(target).__name__}")
    spec = registry.spec(FAMILY[role], name, path=f"$.{role}")
    if not isinstance(target, str) and spec is not target:
        raise ValueError(f"{role} spec {name!r} is not the one registered under that name; register it (a plugin "
                         f"returning it from blt_register_{FAMILY[role]}) and pass that registry")
    other = partner if partner is not None else PARTNERS[OTHER[role]]
    experiment = {"model": dict(SMALL_MODEL), "patcher": dict(PATCHERS[0]), role: _section(spec, name, config),
                  OTHER[role]: other if isinstance(other, ComponentConfig) else dict(other)}
    return ComponentSubject(role, name, registry, experiment, device)


# --- the contracts: each returns None or what went wrong ----------------------------------------

def violation_causality(subject: ComponentSubject, example: tuple[mi.Edit, int]) -> str | None:
    edit, which = example
    patcher = subject.patchers()[which]
    before = subject.logits(edit.ids, patcher)[0, : edit.t + 1]
    after = subject.logits(edit.edited, patcher)[0, : edit.t + 1]
    found = logits_mismatch(after, before, f"positions <= t={edit.t} (patcher {patcher.config.kind})")
    return None if found is None else f"{found}; {edit}"


def violation_batch_consistency(subject: ComponentSubject, example: tuple[list[list[int]], list[int]]) -> str | None:
    rows, pads = example
    batch = mi.padded(rows, pads, extra=1)
    together = subject.logits(batch)
    for b, row in enumerate(rows):
        found = logits_mismatch(subject.logits(row)[0], together[b, : len(row)], f"row {b} alone vs in the batch")
        if found is not None:
            return f"{found}; batch {batch.tolist()}"
    return None


def violation_deterministic(subject: ComponentSubject, example: tuple[list[list[int]], list[int]]) -> str | None:
    batch = mi.padded(*example)
    before = batch.clone()
    first, second = subject.logits(batch), subject.logits(batch.clone())
    if not torch.equal(batch, before):
        return "the forward modified its input tokens"
    if not torch.equal(first, second):
        err, where = mi.max_difference(first, second)
        return f"two forwards of batch {batch.tolist()} differ by up to {err:.3g} at {where}"
    return None


def check_cached_step(subject: ComponentSubject) -> ContractResult:
    from blt.generate.api import generate_detailed

    from blt.generate.steps import step_problem

    model = subject.model()
    component = getattr(model, subject.role)
    problem = step_problem(component, subject.role)
    if problem is not None:
        if callable(getattr(component, "incremental_step", None)):  # a step that is not its own: a plugin bug
            return ContractResult("cached_step", False, f"{problem} (cached generation refuses it)")
        return ContractResult("cached_step", True, f"no incremental step: cached generation refuses it, --no-cache works "
                              f"({problem})")
    prompts = [list(p) if isinstance(p, tuple) else p for p in PROMPTS]
    steps = 0
    for patcher in subject.patchers():
        kind = patcher.config.kind
        run = dict(max_new_bytes=10, stop_at_eos=False, keep_logits=True)
        try:
            full = generate_detailed(model, patcher, prompts, cache=False, **run)
        except Exception as exc:
            return ContractResult("cached_step", False, f"cache=False generation failed ({kind} patcher): {type(exc).__name__}: {exc}")
        try:
            cached = generate_detailed(model, patcher, prompts, cache=True, **run)
        except UnavailableError as exc:
            return ContractResult("cached_step", False, f"cached generation refused ({kind} patcher): {exc}")
        except Exception as exc:
            return ContractResult("cached_step", False, f"cached generation failed ({kind} patcher): {type(exc).__name__}: {exc}")
        for row, (want, got) in enumerate(zip(full.logits, cached.logits)):
            n = min(len(want), len(got))
            for step in range(n):
                found = logits_mismatch(got[step], want[step], f"prompt {PROMPTS[row]!r}, new byte {step} ({kind} patcher)")
                if found is not None:
                    return ContractResult("cached_step", False, f"the cached step disagrees with the full forward: {found}")
            if len(want) != len(got):
                return ContractResult("cached_step", False, f"prompt {PROMPTS[row]!r}: {len(got)} cached steps vs {len(want)}")
            steps += n
    return ContractResult("cached_step", True, f"cached generation's logits equal cache=False's at all {steps} steps "
                          f"({', '.join(p['kind'] for p in PATCHERS)} patchers)")


def check_speculative_step(subject: ComponentSubject) -> ContractResult:
    from blt.generate.api import generate_detailed
    from blt.generate.steps import step_problem

    model = subject.model()
    if step_problem(getattr(model, subject.role), subject.role) is not None:
        return ContractResult("speculative_step", True, "no incremental step: speculative decoding needs one (see cached_step)")
    prompts = [list(p) if isinstance(p, tuple) else p for p in PROMPTS]
    checked = 0
    for patcher in subject.patchers():
        kind = patcher.config.kind
        run = dict(max_new_bytes=16, stop_at_eos=False, keep_logits=True)
        plain = generate_detailed(model, patcher, prompts, **run)
        try:
            spec = generate_detailed(model, patcher, prompts, speculative=3, **run)
        except UnavailableError as exc:
            if "rewinds rejected drafts" in str(exc):
                return ContractResult("speculative_step", True, f"speculative decoding refuses it: {exc}")
            return ContractResult("speculative_step", False, f"speculative decoding refused ({kind} patcher): {exc}")
        except Exception as exc:
            return ContractResult("speculative_step", False, f"speculative generation failed ({kind} patcher): {type(exc).__name__}: {exc}")
        for row, (want, got) in enumerate(zip(plain.logits, spec.logits)):
            if plain.new_tokens[row] != spec.new_tokens[row]:
                return ContractResult("speculative_step", False, f"prompt {PROMPTS[row]!r} ({kind} patcher): speculative "
                                      f"bytes {spec.new_tokens[row]} differ from plain cached {plain.new_tokens[row]}; a "
                                      "step's snapshot()/restore() must cover all of its state")
            for step in range(len(want)):
                found = logits_mismatch(got[step], want[step], f"prompt {PROMPTS[row]!r}, new byte {step} ({kind} patcher)")
                if found is not None:
                    return ContractResult("speculative_step", False, f"speculative logits disagree with plain cached: {found}")
            checked += len(want)
    return ContractResult("speculative_step", True, f"speculative=3 gives plain cached generation's bytes and logits at all "
                          f"{checked} steps ({', '.join(p['kind'] for p in PATCHERS)} patchers)")


def check_flops(subject: ComponentSubject) -> ContractResult:
    model = subject.model("eager", torch.float32)
    module = subject.module(model)
    if not callable(getattr(module, "flops", None)):
        return ContractResult("flops", False, f"{type(module).__name__} has no flops(n_bytes, n_patches, attention) method")
    patcher = subject.patchers()[0]
    for text in FLOP_ROWS:
        tokens = encode(text)[None].to(subject.device)
        lengths = mi.model_patches(patcher, tokens)
        N, P = tokens.shape[1], PatchLayout.from_lengths(tokens, lengths).num_patches
        found = flops_mismatch(module.flops(float(N), float(P), attention="dense"), lambda: model(tokens, lengths),
                               f"N={N} bytes, P={P} patches", f"{type(model).__name__}.{subject.role}")
        if found is not None:
            return ContractResult("flops", False, found)
    return ContractResult("flops", True, f"flops(..., attention='dense') within {FLOP_TOLERANCE:.0%} of FlopCounterMode "
                          f"on rows of {', '.join(str(len(t) + 1) for t in FLOP_ROWS)} bytes")


def check_gradients(subject: ComponentSubject) -> ContractResult:
    model = subject.model(fresh=True)
    tokens = mi.padded([encode("The cat sat. A dog ran\n").tolist(), encode("Once upon").tolist()], [0, EOS_ID]).to(subject.device)
    problem = gradient_problem(model, {f"{subject.role}.": subject.module(model)}, tokens, mi.model_patches(subject.patchers()[0], tokens))
    count = sum(p.numel() for p in subject.module(model).parameters())
    return ContractResult("gradients", problem is None, problem or f"all {count:,} parameters get a finite gradient")


def check_mask_kinds(subject: ComponentSubject) -> ContractResult:
    module = subject.module(subject.model())
    own = getattr(module, "mask_kinds", None)
    if own is None:
        return ContractResult("mask_kinds", False, f"{type(module).__name__} declares no mask_kinds")
    spec_kinds = frozenset(subject.spec.mask_kinds)
    if spec_kinds != frozenset(own):
        return ContractResult("mask_kinds", False, f"the spec declares {sorted(spec_kinds)} but the module's mask_kinds "
                              f"are {sorted(own)}; declare them once, on the class")
    tokens = encode("ab cd. ef\n", eos=True)[None]
    layout = PatchLayout.from_lengths(tokens, mi.model_patches(subject.patchers()[0], tokens))
    used = {name: m.kind for name, m in module.describe_masks(layout).items()}
    stray = {name: kind for name, kind in used.items() if kind not in spec_kinds}
    if stray:
        return ContractResult("mask_kinds", False, f"describe_masks returns undeclared kinds {stray}; declared: {sorted(spec_kinds)}")
    return ContractResult("mask_kinds", True, f"declares {', '.join(sorted(spec_kinds)) or 'none'}; describes {used}")


SEARCHED: dict[str, tuple[str, Callable[[ComponentSubject, Any], str | None], Callable[[], st.SearchStrategy]]] = {
    "causality": ("bytes after t (patches recomputed) never change logits at positions <= t", violation_causality,
                  lambda: st.tuples(mi.edits(), st.integers(0, len(PATCHERS) - 1))),
    "batch_consistency": ("a row alone gives the logits it gives in a ragged, differently padded batch",
                          violation_batch_consistency, mi.ragged_batches),
    "deterministic": ("same batch, identical logits; input untouched", violation_deterministic, mi.ragged_batches),
}
CHECKS: dict[str, Callable[[ComponentSubject], ContractResult]] = {
    "cached_step": check_cached_step,
    "speculative_step": check_speculative_step,
    "flops": check_flops,
    "gradients": check_gradients,
}
CONTRACT_NAMES = ("mask_kinds", *SEARCHED, *CHECKS)


@single_threaded
def run_component_contracts(role: str, target: Any, *, registry: Any = None, config: Any = None, partner: Any = None,
                            max_examples: int = DEFAULT_EXAMPLES, device: str = "cpu",
                            only: Any = None) -> list[ContractResult]:
    """Every contract of the ``role`` ("encoder" / "decoder") suite, one result each (module docstring).

    A ``BltError`` from building the small model (a bad config) propagates unchanged."""
    subject = resolve_component(role, target, registry=registry, config=config, partner=partner, device=device)
    names = list(CONTRACT_NAMES) if only is None else list(only)
    unknown = sorted(set(names) - set(CONTRACT_NAMES))
    if unknown:
        raise ValueError(f"unknown contract(s) {unknown}; known: {', '.join(CONTRACT_NAMES)}")
    subject.model()  # build errors surface here, as themselves
    results = []
    for name in CONTRACT_NAMES:
        if name not in names:
            continue
        if name == "mask_kinds":
            results.append(_guard(name, check_mask_kinds, subject))
        elif name in SEARCHED:
            summary, violation, strategy = SEARCHED[name]
            found = search(lambda example, v=violation: v(subject, example), strategy(), max_examples)
            results.append(ContractResult(name, True, summary) if found is None
                           else ContractResult(name, False, found[1], found[0]))
        else:
            results.append(_guard(name, CHECKS[name], subject))
    return results


def _guard(name: str, check: Callable[[ComponentSubject], ContractResult], subject: ComponentSubject) -> ContractResult:
    try:
        return check(subject)
    except Exception as exc:
        return ContractResult(name, False, f"raised {type(exc).__name__}: {exc}")


def run_encoder_contracts(target: Any, **kwargs: Any) -> list[ContractResult]:
    return run_component_contracts("encoder", target, **kwargs)


def run_decoder_contracts(target: Any, **kwargs: Any) -> list[ContractResult]:
    return run_component_contracts("decoder", target, **kwargs)


def check_encoder(target: Any, **kwargs: Any) -> list[ContractResult]:
    """The encoder suite; ``AssertionError`` listing each failed contract."""
    return raise_failures("encoder", _name(target), run_encoder_contracts(target, **kwargs))


def check_decoder(target: Any, **kwargs: Any) -> list[ContractResult]:
    """The decoder suite; ``AssertionError`` listing each failed contract."""
    return raise_failures("decoder", _name(target), run_decoder_contracts(target, **kwargs))


def _name(target: Any) -> str:
    return target if isinstance(target, str) else getattr(target, "name", type(target).__name__)


__all__ = ["CONTRACT_NAMES", "ComponentSubject", "check_decoder", "check_encoder", "resolve_component", "run_component_contracts", "run_decoder_contracts", "run_encoder_contracts"]
