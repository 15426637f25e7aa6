"""pytest plugin (entry point ``pytest11: blt_contracts``): every family's contract suite in any test run.

Off by default, so installing blt-lab changes nothing in unrelated test runs. Turn it on with
``pytest --blt-contracts`` or ``blt_contracts = true`` in the ini file; it then adds one test
item ``blt_contracts[FAMILY-KIND]`` per registered component of every family in
``blt.make_registry()`` (installed plugins included): patchers, encoders, decoders, attention
backends and models. Narrow it with ``--blt-contracts-families patcher,model`` and
``--blt-contracts-kinds space,encoder:pooling`` (a bare kind selects it in every family that has
it; ``FAMILY:KIND`` one family), or the ini keys ``blt_contracts_families`` /
``blt_contracts_kinds``. An item whose contracts are all skipped (a backend unavailable here) is
reported skipped with the reason; a ``needs_model`` patcher whose model cannot be built here too.

Budgets: ``--blt-contracts-max-examples N`` (or ``blt_contracts_max_examples``) sets the
hypothesis examples per contract for every family; by default each family uses its quick CI
budget (:data:`blt.testing.families.FAMILIES`).

Fixtures, for a package's own tests: ``blt_check_patcher`` (``blt.testing.check_patcher``) and
``blt_check_plugin(family, kind, **options)`` (``blt.testing.check_family``), with the configured
budget. Importing this module imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

import pytest

FAMILY_NAMES = ("patcher", "encoder", "decoder", "attention", "model")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("blt", "blt-lab contract suites")
    group.addoption("--blt-contracts", action="store_true", default=None,
                    help="add a contract-suite test for every registered blt component")
    group.addoption("--blt-contracts-families", default=None, metavar="F1,F2",
                    help=f"only these families ({', '.join(FAMILY_NAMES)}; comma separated)")
    group.addoption("--blt-contracts-kinds", default=None, metavar="K1,F:K2",
                    help="only these kinds (comma separated; FAMILY:KIND for one family)")
    group.addoption("--blt-contracts-max-examples", type=int, default=None, metavar="N",
                    help="hypothesis examples per contract (default: each family's quick budget)")
    parser.addini("blt_contracts", type="bool", default=False, help="run the blt contract suites")
    parser.addini("blt_contracts_families", type="args", default=[], help="families to check (default: all)")
    parser.addini("blt_contracts_kinds", type="args", default=[], help="kinds to check, KIND or FAMILY:KIND (default: all)")
    parser.addini("blt_contracts_max_examples", type="string", default="",
                  help="hypothesis examples per contract (default: each family's quick budget)")


def _enabled(config: pytest.Config) -> bool:
    flag = config.getoption("--blt-contracts", default=None)
    return bool(flag) if flag is not None else bool(config.getini("blt_contracts"))


def _listed(config: pytest.Config, option: str, ini: str) -> list[str]:
    raw = config.getoption(option, default=None)
    if raw:
        return [k.strip() for k in raw.split(",") if k.strip()]
    return list(config.getini(ini))


def _max_examples(config: pytest.Config) -> int | None:
    value = config.getoption("--blt-contracts-max-examples", default=None)
    if value is None:
        value = config.getini("blt_contracts_max_examples") or None
    return int(value) if value is not None else None


def _budget(family: str, max_examples: int | None) -> int:
    from blt.testing.families import FAMILIES

    return max_examples if max_examples is not None else FAMILIES[family].quick_examples


class ContractItem(pytest.Item):
    """Runs one family's contract suite on one registered kind."""

    def __init__(self, *, family: str, kind: str, max_examples: int | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.family = family
        self.kind = kind
        self.max_examples = max_examples

    def runtest(self) -> None:
        import blt
        from blt.testing.families import FAMILIES, run_family
        from blt.testing.results import raise_failures

        registry = blt.make_registry()
        if self.family == "patcher":
            self._preflight_patcher(registry)
        results = run_family(self.family, self.kind, registry=registry, max_examples=_budget(self.family, self.max_examples))
        raise_failures(FAMILIES[self.family].what, self.kind, results)
        if results and all(r.skipped for r in results):
            pytest.skip(f"{self.family} {self.kind}: every contract skipped: {results[0].detail}")

    def _preflight_patcher(self, registry: Any) -> None:
        import blt
        from blt.testing import resolve_subject
        from blt.testing.contracts import preflight

        spec = registry.spec("patchers", self.kind)
        try:
            preflight(resolve_subject(self.kind, registry=registry))
        except blt.BltError as exc:
            if spec.needs_model:
                pytest.skip(f"{self.kind} needs a trained model that cannot be built here: {exc}")
            raise

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, AssertionError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[str, int | None, str]:
        return "blt-contracts", None, f"blt {self.family} contracts: {self.kind}"


def selected(registry: Any, families: list[str], kinds: list[str]) -> list[tuple[str, str]]:
    """``(family, kind)`` pairs to check; ``pytest.UsageError`` naming unknown families or kinds."""
    from blt.testing.families import FAMILIES

    bad = sorted(set(families) - set(FAMILIES))
    if bad:
        raise pytest.UsageError(f"blt_contracts_families: unknown famil{'ies' if len(bad) > 1 else 'y'} {bad}; "
                                f"families: {', '.join(FAMILIES)}")
    fams = families or list(FAMILIES)
    registered = [(f, k) for f in fams for k in registry.family(FAMILIES[f].registry_name)]
    if not kinds:
        return registered
    unknown = []
    out: list[tuple[str, str]] = []
    for item in kinds:
        family, _, kind = item.rpartition(":")
        match = [(f, k) for f, k in registered if k == kind and (not family or f == family)]
        if not match:
            unknown.append(item)
        out += [m for m in match if m not in out]
    if unknown:
        names = sorted({k for _, k in registered})
        raise pytest.UsageError(f"blt_contracts_kinds: unknown kind(s) {unknown} in families {', '.join(fams)}; "
                                f"registered: {', '.join(names)}")
    return out


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselection
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _enabled(config):
        return
    import blt

    registry = blt.make_registry()
    pairs = selected(registry, _listed(config, "--blt-contracts-families", "blt_contracts_families"),
                     _listed(config, "--blt-contracts-kinds", "blt_contracts_kinds"))
    budget = _max_examples(config)
    for family, kind in pairs:
        items.append(ContractItem.from_parent(session, name=f"blt_contracts[{family}-{kind}]", family=family, kind=kind,
                                              max_examples=budget))


@pytest.fixture
def blt_check_patcher(request: pytest.FixtureRequest) -> Any:
    """``check_patcher(target, *, registry=None, config=None, max_examples=<configured>)``."""
    from blt.testing import check_patcher

    budget = _budget("patcher", _max_examples(request.config))

    def check(target: Any, *, registry: Any = None, config: Any = None, max_examples: int | None = None) -> Any:
        return check_patcher(target, registry=registry, config=config, max_examples=max_examples or budget)

    return check


@pytest.fixture
def blt_check_plugin(request: pytest.FixtureRequest) -> Any:
    """``check(family, kind, *, registry=None, config=None, max_examples=<configured>, **options)``:
    the family's suite on a registered kind, ``AssertionError`` listing failed contracts."""
    from blt.testing.families import check_family

    configured = _max_examples(request.config)

    def check(family: str | None, kind: str, *, max_examples: int | None = None, **kwargs: Any) -> Any:
        from blt.testing.families import FAMILIES, resolve_family

        registry = kwargs.pop("registry", None)
        if registry is None:
            import blt

            registry = blt.make_registry()
        fam = resolve_family(registry, kind, family)
        budget = max_examples or (configured if configured is not None else FAMILIES[fam].quick_examples)
        return check_family(fam, kind, registry=registry, max_examples=budget, **kwargs)

    return check
