"""``dynamic_chunking``: H-Net's learned dynamic chunking (Hwang, Wang & Gu, arXiv 2507.07955)
with Transformer blocks, one or two stages, as a model plugin.

The model's router chooses chunk boundaries end to end (trained by the language-modelling loss
through a straight-through estimator and steered to a target compression by a ratio loss, which
the trainer adds through the model's ``aux_loss()``). It reads rows of bytes and ignores the
patcher's lengths: configure the ``byte`` or ``strided`` patcher. Files: ``config.py`` (the
``[model]`` table), ``routing.py`` (router, ratio loss, STE), ``chunking.py`` (chunk / dechunk),
``model.py`` (the network, FLOPs, realised compression).

Generation: ``--no-cache`` (every byte recomputed from scratch); there is no cached step, so
cached generation is refused with that advice.
"""

from __future__ import annotations

from typing import Any

from blt.core.hookspecs import hookimpl
from blt.core.specs import ModelSpec
from blt.plugins.models.dynamic_chunking.config import DynamicChunkingConfig, check_config


def check_attention(experiment: Any, registry: Any, *, training: bool, device: Any) -> None:
    import torch

    from blt.attention.masks import LOCAL_BLOCK_CAUSAL, PATCH_BLOCK_CAUSAL
    from blt.model.build import check_attention as check

    check(experiment, registry, training=training, device=torch.device(device or "cpu"),
          needs={LOCAL_BLOCK_CAUSAL: "dynamic_chunking byte-level encoder/decoder",
                 PATCH_BLOCK_CAUSAL: "dynamic_chunking networks over chunks"})


def build(experiment: Any, registry: Any, *, patcher: Any = None, device: Any = None, training: bool = False) -> Any:
    from blt.plugins.models.dynamic_chunking.model import DynamicChunkingLM

    check_config(experiment.model)
    check_attention(experiment, registry, training=training, device=device)
    backend = registry.spec("attention", experiment.attention.kind, path="$.attention").build(experiment.attention)
    return DynamicChunkingLM(experiment.model, backend)


@hookimpl
def blt_register_models():
    return [ModelSpec(name="dynamic_chunking", config_type=DynamicChunkingConfig, build=build,
                      summary="H-Net dynamic chunking: learned boundaries (router + ratio loss), 1 or 2 stages of Transformers")]
