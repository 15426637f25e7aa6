"""``entropy``: patch boundaries where the transformer entropy model is uncertain (BLT's default)."""

from __future__ import annotations

from functools import partial

from blt.core.hookspecs import hookimpl
from blt.core.specs import PatcherSpec
from blt.entropy.patcher import EntropyPatcher, EntropyPatcherConfig

# Calibrated with `blt calibrate --kind entropy --target 4.5` on the built-in train split for the
# shipped transformer-tiny model (see blt/resources/entropy/README.md).
DEFAULT_THRESHOLD = 2.8578286170959473


class EntropyConfig(EntropyPatcherConfig, tag="entropy"):
    """Transformer entropy patching; see :class:`blt.entropy.patcher.EntropyPatcherConfig`."""


@hookimpl
def blt_register_patchers():
    return [PatcherSpec(name="entropy", config_type=EntropyConfig,
                        build=partial(EntropyPatcher, model_kind="transformer", default_threshold=DEFAULT_THRESHOLD),
                        incremental=True, needs_model=True,
                        summary="a patch starts where the transformer byte LM's next-byte entropy exceeds a threshold")]
