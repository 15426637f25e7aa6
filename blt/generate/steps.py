"""Building a component's incremental step for cached generation, never a wrong one.

A component (encoder, decoder, model) offers cached generation through its own
``incremental_step(...)`` method, written next to its ``forward`` in its plugin file. There is no
fallback to another component's step: one without a step is refused with a clear message, and so
is a subclass that overrides ``forward`` but inherits its parent's step (that step would compute
the parent's maths). ``cache=False`` (``blt generate --no-cache``) works for every component.
"""

from __future__ import annotations

from typing import Any

from blt.core.errors import UnavailableError


def _definer(cls: type, name: str) -> type | None:
    """The class in ``cls``'s MRO whose own body defines ``name``."""
    return next((c for c in cls.__mro__ if name in vars(c)), None)


def step_problem(module: Any, what: str) -> str | None:
    """Why ``module`` has no trustworthy incremental step, or None when it has one."""
    cls = type(module)
    if not callable(getattr(module, "incremental_step", None)):
        return (f"{what} {cls.__name__} has no incremental step, so cached generation cannot run it; "
                "use cache=False (blt generate --no-cache)")
    step_owner, forward_owner = _definer(cls, "incremental_step"), _definer(cls, "forward")
    if forward_owner is not None and step_owner is not None and forward_owner is not step_owner \
            and issubclass(forward_owner, step_owner):
        return (f"{what} {cls.__name__} overrides forward() but inherits incremental_step() from "
                f"{step_owner.__name__}, whose step computes {step_owner.__name__}'s maths; give "
                f"{cls.__name__} an incremental_step of its own, or use cache=False (blt generate --no-cache)")
    return None


def component_step(module: Any, what: str, *args: Any) -> Any:
    """``module.incremental_step(*args)``, or UnavailableError saying why there is none."""
    problem = step_problem(module, what)
    if problem is not None:
        raise UnavailableError(problem)
    return module.incremental_step(*args)
