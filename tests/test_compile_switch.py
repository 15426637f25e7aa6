"""``[model] compile = true``: compiled layer halves give the eager model's logits and gradients, and
cached generation (which calls layers with a cache) still runs eagerly. Compiles once (~20-40 s)."""

from __future__ import annotations

import torch

import blt
from blt.generate.api import generate
from blt.model.blocks import TransformerLayer
from test_model import batch, tiny


def test_compiled_layers_match_eager_and_generation_still_works(registry):
    torch.manual_seed(0)
    eager = blt.build_model(tiny(attention="sdpa"), registry=registry)
    compiled = blt.build_model(tiny(attention="sdpa", compile=True), registry=registry)
    compiled.load_state_dict(eager.state_dict())
    assert all(m.compiled for m in compiled.modules() if isinstance(m, TransformerLayer))
    assert not any(m.compiled for m in eager.modules() if isinstance(m, TransformerLayer))
    assert list(compiled.state_dict()) == list(eager.state_dict())
    tokens, lengths = batch(registry)
    for model in (eager, compiled):
        torch.nn.functional.cross_entropy(model(tokens, lengths)[:, :-1].reshape(-1, 260), tokens[:, 1:].reshape(-1)).backward()
    with torch.no_grad():
        torch.testing.assert_close(compiled(tokens, lengths), eager(tokens, lengths), atol=1e-5, rtol=1e-4)
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-5, rtol=1e-4, msg=lambda m: f"{name}: {m}")
    patcher = registry.build_patcher({"kind": "space"})
    compiled.eval()
    eager.eval()
    kw = dict(max_new_bytes=6, cache=True, stop_at_eos=False)
    assert generate(compiled, patcher, ["hello there"], **kw) == generate(eager, patcher, ["hello there"], **kw)
