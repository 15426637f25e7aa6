"""The model contract suite: a whole model (``[model] kind``) built small, as training builds it.

- ``loss``: ``model(tokens, patch_lengths, targets)`` returns a finite, non-negative 0-dim float
  tensor (summed cross-entropy, nats) and a positive int (target bytes);
- ``causality[PATCHER]``, one per registered patcher, for models whose spec says ``byte_causal``:
  changing the tokens after t of the stream the model reads (a patcher's ``prepare_document``
  stream), patches recomputed as training computes them, leaves the logits at positions <= t
  unchanged (through ``model(tokens, patch_lengths)``, or, for a model without byte logits, the
  summed loss of the targets <= t). A model whose likelihood is not over bytes
  (``byte_causal=False``) reports "not applicable" (skipped); a patcher that cannot be built
  here or that the model refuses is reported skipped with the reason;
- ``flops``: ``model.flops(n_bytes, avg_patch_size, attention="dense")`` is within 2% of
  ``FlopCounterMode`` on the model's forward (``eager`` attention: dense masks); a model whose
  cost depends on the row beyond the patcher (learned chunking) gives the row's realised shape as
  keyword arguments of ``flops`` through ``model.flops_kwargs(tokens, patch_lengths)``;
- ``gradients``: every parameter gets a finite gradient from the loss;
- ``target_nats`` (optional method; skipped when the model has none): ``model.target_nats(tokens,
  patch_lengths, targets)`` is a float ``[B, N]`` tensor, 0 where the target is pad, whose sum is
  the loss's ``ce_sum`` (per-byte scoring, blt.evaluation, relies on it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import torch

from blt.core.errors import BltError, ConfigError
from blt.testing import model_inputs as mi
from blt.testing.model_checks import FLOP_TOLERANCE, LOGIT_TOLERANCE, flops_mismatch, gradient_problem, next_targets
from blt.testing.model_inputs import PARTNERS, SMALL_MODEL
from blt.testing.results import ContractResult, raise_failures
from blt.testing.search import search, single_threaded
from blt.tokens import EOS_ID, PAD_ID, encode

DEFAULT_EXAMPLES = 25
FLOP_ROW = "The quick brown fox jumps over the lazy dog, twice over."
GRADIENT_ROWS = ("The cat sat. A dog ran\n", "Once upon")


@attrs.define
class ModelSubject:
    """A model kind, the small experiment it is built from, and the patchers it is checked with."""

    name: str
    registry: Any
    experiment: dict[str, Any]
    patcher_tables: dict[str, Any]
    device: str = "cpu"
    _patchers: dict[str, Any] = attrs.field(factory=dict)
    _models: dict[Any, Any] = attrs.field(factory=dict)

    @property
    def spec(self) -> Any:
        return self.registry.spec("models", self.name, path="$.model")

    def patcher(self, kind: str) -> Any:
        """The built patcher, after one preflight patch (so a missing model file or tokenizer
        surfaces here as its ``BltError``, not as a contract violation)."""
        if kind not in self._patchers:
            patcher = self.registry.build_patcher(self.patcher_tables.get(kind, {"kind": kind}))
            mi.stream_patch(patcher)(encode("preflight")[None], include_next_token=True)
            self._patchers[kind] = patcher
        return self._patchers[kind]

    def model(self, kind: str, attention: str = "sdpa", dtype: torch.dtype = torch.float64, fresh: bool = False) -> Any:
        """The model built with patcher ``kind`` under a fixed seed, in eval mode."""
        key = (kind, attention, dtype)
        if fresh or key not in self._models:
            import blt

            table = self.patcher_tables.get(kind, {"kind": kind})
            data = {**self.experiment, "patcher": table, "attention": {"kind": attention}}
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model = blt.build_model(data, registry=self.registry, patcher=self.patcher(kind))
            model = model.to(self.device, dtype).eval()
            if fresh:
                return model
            self._models[key] = model
        return self._models[key]

    def home_patcher(self) -> str:
        """The patcher the experiment defaults to, or the first the model accepts."""
        first = self.experiment.get("patcher", {}).get("kind", "space")
        for kind in [first, *[k for k in self.registry.patchers if k != first]]:
            try:
                self.model(kind)
                return kind
            except ConfigError:
                continue
        raise ConfigError(f"$.model.kind: model {self.name!r} accepts none of the registered patchers")


def resolve_model(target: Any, *, registry: Any = None, config: Any = None, patchers: Mapping[str, Any] | None = None,
                  experiment: Mapping[str, Any] | None = None, device: str = "cpu") -> ModelSubject:
    """The subject for a registered model kind. ``config``: its ``[model]`` fields (default: its
    defaults with the small trunk of :data:`SMALL_MODEL` where it has those fields);
    ``patchers``: ``{kind: table}`` for patchers that need settings here (e.g. an entropy model
    path); ``experiment``: other tables (``encoder``, ``decoder``) replacing the small defaults."""
    if isinstance(target, ModelSubject):
        return target
    if registry is None:
        import blt

        registry = blt.make_registry()
    if not isinstance(target, str):
        raise TypeError(f"expected a model kind, got {type(target).__name__}")
    spec = registry.spec("models", target, path="$.model")
    fields = set(spec.config_type.__struct_fields__)
    given = dict(config or {})
    table = {**{k: v for k, v in SMALL_MODEL.items() if k in fields and k not in given and k != "kind"}, **given,
             "kind": target}
    data = {"encoder": dict(PARTNERS["encoder"]), "decoder": dict(PARTNERS["decoder"]), "patcher": {"kind": "space"},
            **dict(experiment or {}), "model": table}
    tables = {kind: {"kind": kind, **dict(t)} for kind, t in (patchers or {}).items()}
    return ModelSubject(target, registry, data, tables, device)


# --- contracts ----------------------------------------------------------------------------------

def check_loss(subject: ModelSubject) -> ContractResult:
    kind = subject.home_patcher()
    model, patcher = subject.model(kind), subject.patcher(kind)
    tokens = mi.padded([mi.prepare_stream(patcher, encode(t).tolist()) for t in GRADIENT_ROWS], [PAD_ID, EOS_ID])
    tokens = tokens.to(subject.device)
    with torch.no_grad():
        out = model(tokens, mi.model_patches(patcher, tokens), next_targets(tokens))
    if not (isinstance(out, tuple) and len(out) == 2):
        return ContractResult("loss", False, f"model(tokens, patch_lengths, targets) must return (ce_sum, n), got {type(out).__name__}")
    ce, n = out
    if not isinstance(ce, torch.Tensor) or ce.dim() != 0 or not ce.dtype.is_floating_point:
        return ContractResult("loss", False, f"ce_sum must be a 0-dim float tensor, got {ce!r}")
    if not bool(torch.isfinite(ce)) or float(ce) < 0:
        return ContractResult("loss", False, f"ce_sum must be finite and >= 0, got {float(ce)}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        return ContractResult("loss", False, f"the target byte count must be a positive int, got {n!r}")
    return ContractResult("loss", True, f"(ce_sum {float(ce):.4g} nats, {n} target bytes) on a ragged batch ({kind} patcher)")


def _outputs(model: Any, patcher: Any, ids: tuple[int, ...], t: int, targets: torch.Tensor | None) -> torch.Tensor:
    """Logits at positions <= t, or (``targets`` given) the loss of the targets <= t as a 1-element tensor."""
    device = next(model.parameters()).device
    tokens = torch.tensor([list(ids)], dtype=torch.long, device=device)
    lengths = mi.model_patches(patcher, tokens)
    with torch.no_grad():
        if targets is None:
            return model(tokens, lengths)[0, : t + 1]
        ce, _ = model(tokens, lengths, targets.to(device))
        return ce.reshape(1)


def _has_logits(model: Any, patcher: Any) -> bool:
    tokens = encode("ab")[None].to(next(model.parameters()).device)
    try:
        with torch.no_grad():
            out = model(tokens, mi.model_patches(patcher, tokens))
    except (BltError, TypeError):
        return False
    return isinstance(out, torch.Tensor) and out.dim() == 3


def causality_violation(model: Any, patcher: Any, edit: mi.Edit, use_logits: bool) -> str | None:
    """How editing the tokens after t changed what the model computes at positions <= t, or None."""
    targets = None
    if not use_logits:  # the original row's targets <= t, pad (ignored) after: the same for both rows
        ids = torch.tensor([list(edit.ids)], dtype=torch.long)
        targets = next_targets(ids)
        targets[:, edit.t + 1 :] = PAD_ID
    before = _outputs(model, patcher, edit.ids, edit.t, targets)
    after = _outputs(model, patcher, edit.edited, edit.t, targets)
    if torch.allclose(after, before, **LOGIT_TOLERANCE):
        return None
    err, where = mi.max_difference(after, before)
    what = "logits at positions <= t" if use_logits else "the summed loss of targets <= t"
    return f"{what} changed by up to {err:.3g} (at {where}); {edit}"


def check_causality(subject: ModelSubject, max_examples: int) -> list[ContractResult]:
    if not subject.spec.byte_causal:
        return [ContractResult.skip("causality", f"not applicable: model {subject.name!r} declares byte_causal=False (its "
                                    "likelihood is over units spanning several bytes, so no per-byte causality holds)")]
    results = []
    for kind in subject.registry.patchers:
        name = f"causality[{kind}]"
        try:
            patcher = subject.patcher(kind)
            model = subject.model(kind)
        except ConfigError as exc:
            results.append(ContractResult.skip(name, f"model {subject.name!r} does not take the {kind} patcher: {exc}"))
            continue
        except BltError as exc:
            results.append(ContractResult.skip(name, f"the {kind} patcher cannot be built here: {exc}"))
            continue
        use_logits = _has_logits(model, patcher)
        strategy = mi.edits(stream=lambda ids, p=patcher: mi.prepare_stream(p, ids))
        found = search(lambda edit: causality_violation(model, patcher, edit, use_logits), strategy, max_examples)
        how = "logits" if use_logits else "summed loss of targets <= t"
        if found is None:
            results.append(ContractResult(name, True, f"tokens after t never change the {how} at positions <= t"))
        else:
            results.append(ContractResult(name, False, f"not causal with the {kind} patcher: {found[1]}", found[0]))
    return results


def check_flops(subject: ModelSubject) -> ContractResult:
    kind = subject.home_patcher()
    model, patcher = subject.model(kind, "eager", torch.float32), subject.patcher(kind)
    if not callable(getattr(model, "flops", None)):
        return ContractResult("flops", False, f"{type(model).__name__} has no flops(n_bytes, avg_patch_size, attention) method")
    tokens = torch.tensor([mi.prepare_stream(patcher, encode(FLOP_ROW).tolist())], device=subject.device)
    lengths = mi.model_patches(patcher, tokens)
    N, P = tokens.shape[1], int((lengths > 0).sum())
    avg = N / max(P - 1, 1)  # P = 1 + N / a: the row's first byte is a patch of its own
    # a model whose cost depends on the data beyond the patcher (its own chunking) says how for this row
    shape = getattr(model, "flops_kwargs", None)
    extra = shape(tokens, lengths) if callable(shape) else {}
    found = flops_mismatch(model.flops(float(N), avg, attention="dense", **extra),
                           lambda: model(tokens, lengths, next_targets(tokens)), f"N={N} bytes, {P} patches (a={avg:.3g}) {extra or ''}")
    if found is not None:
        return ContractResult("flops", False, found)
    return ContractResult("flops", True, f"flops(..., attention='dense') within {FLOP_TOLERANCE:.0%} of FlopCounterMode "
                          f"(N={N}, a={avg:.3g}, {kind} patcher)")


def check_gradients(subject: ModelSubject) -> ContractResult:
    kind = subject.home_patcher()
    model, patcher = subject.model(kind, fresh=True), subject.patcher(kind)
    tokens = mi.padded([mi.prepare_stream(patcher, encode(t).tolist()) for t in GRADIENT_ROWS], [PAD_ID, EOS_ID])
    tokens = tokens.to(subject.device)
    problem = gradient_problem(model, {"": model}, tokens, mi.model_patches(patcher, tokens))
    count = sum(p.numel() for p in model.parameters())
    return ContractResult("gradients", problem is None, problem or f"all {count:,} parameters get a finite gradient")


def check_target_nats(subject: ModelSubject) -> ContractResult:
    kind = subject.home_patcher()
    model, patcher = subject.model(kind), subject.patcher(kind)
    if not callable(getattr(model, "target_nats", None)):
        return ContractResult.skip("target_nats", f"{type(model).__name__} has no target_nats (per-byte scores unavailable)")
    tokens = mi.padded([mi.prepare_stream(patcher, encode(t).tolist()) for t in GRADIENT_ROWS], [PAD_ID, EOS_ID])
    tokens = tokens.to(subject.device)
    lengths, targets = mi.model_patches(patcher, tokens), next_targets(tokens)
    with torch.no_grad():
        ce, _ = model(tokens, lengths, targets)
        nats = model.target_nats(tokens, lengths, targets)
    if not isinstance(nats, torch.Tensor) or tuple(nats.shape) != tuple(targets.shape) or not nats.dtype.is_floating_point:
        return ContractResult("target_nats", False, f"target_nats must be a float tensor of shape {tuple(targets.shape)}, got {nats!r}")
    if bool((nats[targets == PAD_ID] != 0).any()):
        return ContractResult("target_nats", False, "target_nats is not 0 where the target is pad")
    if not torch.allclose(nats.sum().double(), ce.double(), rtol=1e-4, atol=1e-4):
        return ContractResult("target_nats", False, f"target_nats sums to {float(nats.sum()):.6g}, the loss is {float(ce):.6g}")
    return ContractResult("target_nats", True, f"sums to the loss ({float(ce):.4g} nats) on a ragged batch ({kind} patcher)")


CONTRACT_NAMES = ("loss", "causality", "flops", "gradients", "target_nats")


@single_threaded
def run_model_contracts(target: Any, *, registry: Any = None, config: Any = None, patchers: Mapping[str, Any] | None = None,
                        experiment: Mapping[str, Any] | None = None, max_examples: int = DEFAULT_EXAMPLES,
                        device: str = "cpu", only: Any = None) -> list[ContractResult]:
    """Every model contract (module docstring); ``only``: a subset of :data:`CONTRACT_NAMES`."""
    subject = resolve_model(target, registry=registry, config=config, patchers=patchers, experiment=experiment, device=device)
    names = list(CONTRACT_NAMES) if only is None else list(only)
    unknown = sorted(set(names) - set(CONTRACT_NAMES))
    if unknown:
        raise ValueError(f"unknown contract(s) {unknown}; known: {', '.join(CONTRACT_NAMES)}")
    subject.model(subject.home_patcher())  # build errors surface here, as themselves
    results: list[ContractResult] = []
    for name in CONTRACT_NAMES:
        if name not in names:
            continue
        if name == "causality":
            results += check_causality(subject, max_examples)
            continue
        check = {"loss": check_loss, "flops": check_flops, "gradients": check_gradients,
                 "target_nats": check_target_nats}[name]
        try:
            results.append(check(subject))
        except Exception as exc:
            results.append(ContractResult(name, False, f"raised {type(exc).__name__}: {exc}"))
    return results


def check_model(target: Any, **kwargs: Any) -> list[ContractResult]:
    """The model suite; ``AssertionError`` listing each failed contract."""
    return raise_failures("model", target if isinstance(target, str) else str(target), run_model_contracts(target, **kwargs))


__all__ = ["CONTRACT_NAMES", "ModelSubject", "causality_violation", "check_model", "resolve_model", "run_model_contracts"]
