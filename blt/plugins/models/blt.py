"""``blt``: the Byte Latent Transformer, assembled from the experiment's encoder, global
transformer, decoder and attention backend (:class:`blt.model.blt.ByteLatentTransformer`).

It reads every row's bytes and the patcher's lengths, predicts every next byte, reports FLOPs by
component (each component reports its own) and has an exact cached step for generation.
"""

from __future__ import annotations

from typing import Any

from blt.core.hookspecs import hookimpl
from blt.core.specs import ModelSpec
from blt.model.config import BltConfig


def build(experiment: Any, registry: Any, *, patcher: Any = None, device: Any = None, training: bool = False) -> Any:
    from blt.model.build import build_blt

    return build_blt(experiment, registry, device=device, training=training)


@hookimpl
def blt_register_models():
    return [ModelSpec(name="blt", config_type=BltConfig, build=build,
                      summary="Byte Latent Transformer: local encoder, global transformer over patches, local decoder")]
