"""What every contract suite returns: one :class:`ContractResult` per contract."""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class ContractResult:
    """One contract's outcome; ``counterexample`` is the shrunk input that broke it (or, for a
    non-incremental patcher, the input that shows it is not prefix-stable).

    ``skipped``: the contract could not be checked here (``detail`` says why, e.g. a backend
    unavailable on this machine, or a contract that does not apply to this component); such a
    result is not a failure (``passed`` is True) but claims nothing. ``status`` is ``"pass"``,
    ``"skip"`` or ``"FAIL"``."""

    name: str
    passed: bool
    detail: str
    counterexample: Any = None
    skipped: bool = False

    @property
    def status(self) -> str:
        return "FAIL" if not self.passed else "skip" if self.skipped else "pass"

    @classmethod
    def skip(cls, name: str, detail: str) -> ContractResult:
        return cls(name, True, detail, skipped=True)


def raise_failures(what: str, name: str, results: list[ContractResult]) -> list[ContractResult]:
    """``results`` unchanged, or ``AssertionError`` listing each failed contract and its detail."""
    failed = [r for r in results if not r.passed]
    if failed:
        raise AssertionError(f"{what} {name!r} breaks {len(failed)} contract(s):\n"
                             + "\n".join(f"- {r.name}: {r.detail}" for r in failed))
    return results


__all__ = ["ContractResult", "raise_failures"]
