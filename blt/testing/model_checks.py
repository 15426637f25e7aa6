"""Checks shared by the component and model suites: logits equal within a tolerance that cannot
flake, reported FLOPs against ``torch.utils.flop_counter.FlopCounterMode``, gradients that reach
every parameter."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from blt.testing.model_inputs import max_difference
from blt.tokens import EOS_ID

FLOP_TOLERANCE = 0.02
#: float64 models give float32 logits: rounding differs by ~1e-7, a real leak by orders more.
LOGIT_TOLERANCE = dict(atol=1e-5, rtol=1e-5)


def next_targets(tokens_BN: torch.Tensor) -> torch.Tensor:
    """Each position's next token (EOS after the last): the targets a row trains on."""
    return torch.cat([tokens_BN[:, 1:], torch.full_like(tokens_BN[:, :1], EOS_ID)], dim=1)


def logits_mismatch(got: torch.Tensor, want: torch.Tensor, what: str) -> str | None:
    """None when equal within :data:`LOGIT_TOLERANCE`, else how and where they differ."""
    if got.shape != want.shape:
        return f"{what}: shapes {list(got.shape)} and {list(want.shape)}"
    if torch.allclose(got, want, **LOGIT_TOLERANCE):
        return None
    err, where = max_difference(got, want)
    return f"{what}: logits differ by up to {err:.3g} at {where}"


def flops_mismatch(reported: Any, run: Callable[[], Any], where: str, fqn: str | None = None) -> str | None:
    """``reported`` (a ``flops()`` result: sub-part -> FLOPs) vs what ``FlopCounterMode`` counts while
    ``run()`` runs: in total, or for the module named ``fqn`` (e.g. ``ByteLatentTransformer.encoder``)."""
    from torch.utils.flop_counter import FlopCounterMode

    if not isinstance(reported, Mapping) or not all(isinstance(v, (int, float)) and v >= 0 for v in reported.values()):
        return f"flops() must return a dict of non-negative numbers by sub-part, got {reported!r}"
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        run()
    measured = float(counter.get_total_flops() if fqn is None else sum(counter.get_flop_counts().get(fqn, {}).values()))
    total = float(sum(reported.values()))
    if abs(total - measured) <= FLOP_TOLERANCE * max(measured, 1.0):
        return None
    parts = ", ".join(f"{k} {v:,.0f}" for k, v in reported.items())
    return (f"{where}: flops() reports {total:,.0f} ({parts}) but FlopCounterMode counts {measured:,.0f}"
            f"{f' for {fqn}' if fqn else ''} ({(total - measured) / max(measured, 1.0):+.1%})")


def gradient_problem(model: torch.nn.Module, modules: Mapping[str, torch.nn.Module], tokens_BN: torch.Tensor,
                     lengths_BP: torch.Tensor) -> str | None:
    """Backward the mean loss of ``model(tokens, lengths, targets)``; None, or which parameters of
    ``modules`` (name prefix -> module) got no gradient or a non-finite one."""
    model.train()
    model.zero_grad(set_to_none=True)
    ce, n = model(tokens_BN, lengths_BP, next_targets(tokens_BN))
    if not bool(torch.isfinite(ce)):
        return f"the loss is not finite: {float(ce)}"
    (ce / max(int(n), 1)).backward()
    missing, bad = [], []
    for prefix, module in modules.items():
        for name, p in module.named_parameters():
            if p.requires_grad and p.grad is None:
                missing.append(f"{prefix}{name}")
            elif p.requires_grad and not bool(torch.isfinite(p.grad).all()):
                bad.append(f"{prefix}{name}")
    if missing:
        return f"no gradient for {', '.join(missing)}"
    if bad:
        return f"non-finite gradient for {', '.join(bad)}"
    return None


__all__ = ["FLOP_TOLERANCE", "LOGIT_TOLERANCE", "flops_mismatch", "gradient_problem", "logits_mismatch", "next_targets"]
