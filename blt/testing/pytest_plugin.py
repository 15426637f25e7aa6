"""pytest plugin (entry point ``pytest11: blt_contracts``): the patcher contract suite in any test run.

Off by default, so installing blt-lab changes nothing in unrelated test runs. Turn it on with
``pytest --blt-contracts`` or ``blt_contracts = true`` in the ini file; it then adds one test
item ``blt_contracts[KIND]`` per patcher in ``blt.make_registry()`` (installed plugins included),
limited to ``blt_contracts_kinds`` / ``--blt-contracts-kinds`` when given. A kind whose
``needs_model`` build fails (no trained model here) is skipped with the reason.

The fixture ``blt_check_patcher`` is ``blt.testing.check_patcher`` with the configured example
budget, for a package's own tests. Importing this module imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

import pytest

_DEFAULT_EXAMPLES = 40


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("blt", "blt-lab patcher contracts")
    group.addoption("--blt-contracts", action="store_true", default=None,
                    help="add a contract-suite test for every registered blt patcher")
    group.addoption("--blt-contracts-kinds", default=None, metavar="K1,K2",
                    help="only these patcher kinds (comma separated)")
    group.addoption("--blt-contracts-max-examples", type=int, default=None, metavar="N",
                    help=f"hypothesis examples per contract (default {_DEFAULT_EXAMPLES})")
    parser.addini("blt_contracts", type="bool", default=False, help="run the blt patcher contract suite")
    parser.addini("blt_contracts_kinds", type="args", default=[], help="patcher kinds to check (default: all)")
    parser.addini("blt_contracts_max_examples", type="string", default=str(_DEFAULT_EXAMPLES),
                  help="hypothesis examples per contract")


def _enabled(config: pytest.Config) -> bool:
    flag = config.getoption("--blt-contracts", default=None)
    return bool(flag) if flag is not None else bool(config.getini("blt_contracts"))


def _kinds(config: pytest.Config) -> list[str]:
    raw = config.getoption("--blt-contracts-kinds", default=None)
    if raw:
        return [k.strip() for k in raw.split(",") if k.strip()]
    return list(config.getini("blt_contracts_kinds"))


def _max_examples(config: pytest.Config) -> int:
    value = config.getoption("--blt-contracts-max-examples", default=None)
    return int(value if value is not None else config.getini("blt_contracts_max_examples"))


class ContractItem(pytest.Item):
    """Runs ``blt.testing.check_patcher`` on one registered kind."""

    def __init__(self, *, kind: str, max_examples: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kind = kind
        self.max_examples = max_examples

    def runtest(self) -> None:
        import blt
        from blt.testing import check_patcher, resolve_subject
        from blt.testing.contracts import preflight

        registry = blt.make_registry()
        spec = registry.spec("patchers", self.kind)
        try:
            subject = resolve_subject(self.kind, registry=registry)
            preflight(subject)
        except blt.BltError as exc:
            if spec.needs_model:
                pytest.skip(f"{self.kind} needs a trained model that cannot be built here: {exc}")
            raise
        check_patcher(subject, max_examples=self.max_examples)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, AssertionError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[str, int | None, str]:
        return "blt-contracts", None, f"blt patcher contracts: {self.kind}"


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselection
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _enabled(config):
        return
    import blt

    registry = blt.make_registry()
    wanted = _kinds(config) or list(registry.patchers)
    unknown = sorted(set(wanted) - set(registry.patchers))
    if unknown:
        raise pytest.UsageError(f"blt_contracts_kinds: unknown patcher kind(s) {unknown}; "
                                f"registered: {', '.join(registry.patchers)}")
    budget = _max_examples(config)
    for kind in wanted:
        items.append(ContractItem.from_parent(session, name=f"blt_contracts[{kind}]", kind=kind, max_examples=budget))


@pytest.fixture
def blt_check_patcher(request: pytest.FixtureRequest) -> Any:
    """``check_patcher(target, *, registry=None, config=None, max_examples=<configured>)``."""
    from blt.testing import check_patcher

    budget = _max_examples(request.config)

    def check(target: Any, *, registry: Any = None, config: Any = None, max_examples: int | None = None) -> Any:
        return check_patcher(target, registry=registry, config=config, max_examples=max_examples or budget)

    return check
