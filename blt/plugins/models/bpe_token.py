"""``bpe_token``: the BPE-token transformer baseline.

A token embedding, the global trunk shape (``d_global``, ``global_layers``, ...) and a softmax over
the BPE vocabulary of the experiment's patcher (it needs a patcher with a ``tokenizer``, the
``bpe`` patcher): each patch of a row is one token. Scored in bits per byte: the token
cross-entropy over the bytes its target tokens cover. A token spans several bytes, so its loss
is a token-level likelihood and the byte causality contract does not apply (``byte_causal``).
"""

from __future__ import annotations

from typing import Any

from blt.baselines.config import TokenLMConfig
from blt.core.errors import ConfigError
from blt.core.hookspecs import hookimpl
from blt.core.specs import ModelSpec


class BpeTokenTransformerConfig(TokenLMConfig, tag="bpe_token"):
    pass


def build(experiment: Any, registry: Any, *, patcher: Any = None, device: Any = None, training: bool = False) -> Any:
    from blt.baselines.token_lm import TokenLM, check_token_lm_attention

    patcher = patcher if patcher is not None else registry.build_patcher(experiment.patcher)
    tokenizer = getattr(patcher, "tokenizer", None)
    if tokenizer is None:
        raise ConfigError(f"$.model.kind: 'bpe_token' reads its vocabulary from the patcher's BPE tokenizer, and the "
                          f"{experiment.patcher.kind!r} patcher has none; set [patcher] kind = \"bpe\"")
    check_token_lm_attention(experiment, registry, training=training, device=device)
    backend = registry.spec("attention", experiment.attention.kind, path="$.attention").build(experiment.attention)
    return TokenLM(experiment.model, tokenizer, backend)


@hookimpl
def blt_register_models():
    return [ModelSpec(name="bpe_token", config_type=BpeTokenTransformerConfig, build=build, byte_causal=False,
                      summary="BPE-token transformer baseline on the bpe patcher's tokens")]
