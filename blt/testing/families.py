"""One entry point for every family's contract suite: which family a kind belongs to, and run it.

>>> from blt.testing.families import run_family, check_family
>>> results = run_family("encoder", "pooling")                    # list[ContractResult]
>>> check_family("attention", "sdpa")                             # AssertionError on a failure

Families and their suites: ``patcher`` (:mod:`blt.testing.contracts`), ``encoder`` / ``decoder``
(:mod:`blt.testing.component_contracts`), ``attention`` (:mod:`blt.testing.attention_contracts`),
``model`` (:mod:`blt.testing.model_contracts`). A kind may exist in several families
(``cross_attention`` is an encoder and a decoder, ``byte`` a patcher and a model): then the
family must be named.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from blt.core.config import suggest
from blt.core.errors import ConfigError
from blt.testing import attention_contracts, component_contracts, model_contracts
from blt.testing.attention_contracts import run_attention_contracts
from blt.testing.component_contracts import run_component_contracts
from blt.testing.contracts import run_contracts
from blt.testing.model_contracts import run_model_contracts
from blt.testing.results import ContractResult, raise_failures


@attrs.frozen
class Family:
    """``registry_name``: the registry's table; ``examples``: the default hypothesis budget per
    contract; ``quick_examples``: the budget of a routine CI run (``pytest --blt-contracts``)."""

    name: str
    registry_name: str
    what: str
    examples: int
    quick_examples: int
    run: Callable[..., list[ContractResult]]


def _patcher(kind: str, *, registry: Any, config: Any, max_examples: int, **options: Any) -> list[ContractResult]:
    return run_contracts(kind, registry=registry, config=config, max_examples=max_examples)


def _component(role: str) -> Callable[..., list[ContractResult]]:
    def run(kind: str, *, registry: Any, config: Any, max_examples: int, device: str = "cpu", **options: Any) -> list[ContractResult]:
        return run_component_contracts(role, kind, registry=registry, config=config, max_examples=max_examples,
                                       device=device, partner=options.get("partner"))

    return run


def _attention(kind: str, *, registry: Any, config: Any, max_examples: int, device: str = "cpu",
               **options: Any) -> list[ContractResult]:
    return run_attention_contracts(kind, registry=registry, config=config, max_examples=max_examples, device=device,
                                   backward=options.get("backward"))


def _model(kind: str, *, registry: Any, config: Any, max_examples: int, device: str = "cpu", **options: Any) -> list[ContractResult]:
    return run_model_contracts(kind, registry=registry, config=config, max_examples=max_examples, device=device,
                               patchers=options.get("patchers"), experiment=options.get("experiment"))


FAMILIES: dict[str, Family] = {
    "patcher": Family("patcher", "patchers", "patcher", 50, 20, _patcher),
    "encoder": Family("encoder", "encoders", "encoder", component_contracts.DEFAULT_EXAMPLES, 10, _component("encoder")),
    "decoder": Family("decoder", "decoders", "decoder", component_contracts.DEFAULT_EXAMPLES, 10, _component("decoder")),
    "attention": Family("attention", "attention", "attention backend", attention_contracts.DEFAULT_EXAMPLES, 8, _attention),
    "model": Family("model", "models", "model", model_contracts.DEFAULT_EXAMPLES, 12, _model),
}


def families_of(registry: Any, kind: str) -> list[str]:
    """The families in which ``kind`` is registered."""
    return [name for name, fam in FAMILIES.items() if kind in registry.family(fam.registry_name)]


def resolve_family(registry: Any, kind: str, family: str | None = None) -> str:
    """``family`` checked (and ``kind`` in it), or the one family that has ``kind``; ``ConfigError`` otherwise."""
    if family is not None:
        if family not in FAMILIES:
            raise ConfigError(f"unknown family {family!r}; families: {', '.join(FAMILIES)}")
        fam = FAMILIES[family]
        registry.spec(fam.registry_name, kind, path=f"$.{family}")  # unknown kind: lists the registered ones
        return family
    found = families_of(registry, kind)
    if len(found) == 1:
        return found[0]
    if found:
        both = " and ".join(_article(FAMILIES[f].what) for f in found)
        raise ConfigError(f"kind {kind!r} is registered as {both}; name the family with --family {'|'.join(found)} "
                          f"(family= in Python)")
    every = sorted({k for fam in FAMILIES.values() for k in registry.family(fam.registry_name)})
    whats = [f.what for f in FAMILIES.values()]
    raise ConfigError(f"unknown kind {kind!r}: no registered {', '.join(whats[:-1])} or {whats[-1]} is called that; "
                      f"{suggest(kind, every)}")


def _article(what: str) -> str:
    return f"{'an' if what[0] in 'aeiou' else 'a'} {what}"


def run_family(family: str | None, kind: str, *, registry: Any = None, config: Any = None, max_examples: int | None = None,
               device: str = "cpu", **options: Any) -> list[ContractResult]:
    """Run ``family``'s suite on a registered ``kind`` (``family=None``: the one family that has it).

    ``config``: the component's table (fields, ``kind`` optional) or config struct; ``max_examples``:
    hypothesis examples per contract (default: the family's). ``options``: ``backward`` (attention),
    ``partner`` (encoder/decoder), ``patchers`` and ``experiment`` (model)."""
    if registry is None:
        import blt

        registry = blt.make_registry()
    family = resolve_family(registry, kind, family)
    fam = FAMILIES[family]
    budget = fam.examples if max_examples is None else max_examples
    return fam.run(kind, registry=registry, config=config, max_examples=budget, device=device, **options)


def check_family(family: str | None, kind: str, **kwargs: Any) -> list[ContractResult]:
    """:func:`run_family`, raising ``AssertionError`` that lists each failed contract."""
    registry = kwargs.pop("registry", None)
    if registry is None:
        import blt

        registry = blt.make_registry()
    family = resolve_family(registry, kind, family)
    return raise_failures(FAMILIES[family].what, kind, run_family(family, kind, registry=registry, **kwargs))


__all__ = ["FAMILIES", "Family", "check_family", "families_of", "resolve_family", "run_family"]
