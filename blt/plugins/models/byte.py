"""``byte``: the byte-level transformer baseline.

A byte embedding, the global trunk shape (``d_global``, ``global_layers``, ...) run on every byte,
and a 260-way softmax: every byte is a step of the big model, no local stacks, no patches (it
ignores the patcher's lengths). A BLT with the ``byte`` patcher is close but keeps at least one
local layer on each side, so it is not the plain baseline. Scored in bits per byte like BLT, with
byte logits, so it also generates (``--no-cache``).
"""

from __future__ import annotations

from typing import Any

from blt.baselines.config import TokenLMConfig
from blt.core.hookspecs import hookimpl
from blt.core.specs import ModelSpec


class ByteTransformerConfig(TokenLMConfig, tag="byte"):
    pass


def build(experiment: Any, registry: Any, *, patcher: Any = None, device: Any = None, training: bool = False) -> Any:
    from blt.baselines.token_lm import TokenLM, check_token_lm_attention

    check_token_lm_attention(experiment, registry, training=training, device=device)
    backend = registry.spec("attention", experiment.attention.kind, path="$.attention").build(experiment.attention)
    return TokenLM(experiment.model, None, backend)


@hookimpl
def blt_register_models():
    return [ModelSpec(name="byte", config_type=ByteTransformerConfig, build=build,
                      summary="byte-level transformer baseline: the global trunk on every byte")]
