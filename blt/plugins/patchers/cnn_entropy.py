"""``cnn_entropy``: entropy patching with the small 2-byte-context CNN model (the paper's CNN variant)."""

from __future__ import annotations

from functools import partial

from blt.core.hookspecs import hookimpl
from blt.core.specs import PatcherSpec
from blt.entropy.patcher import EntropyPatcher, EntropyPatcherConfig

# Calibrated with `blt calibrate --kind cnn_entropy --target 4.5` on the built-in train split for the
# shipped cnn-tiny model (see blt/resources/entropy/README.md).
DEFAULT_THRESHOLD = 2.743618369102478


class CNNEntropyPatcherConfig(EntropyPatcherConfig, tag="cnn_entropy"):
    """CNN entropy patching; see :class:`blt.entropy.patcher.EntropyPatcherConfig`."""


@hookimpl
def blt_register_patchers():
    return [PatcherSpec(name="cnn_entropy", config_type=CNNEntropyPatcherConfig,
                        build=partial(EntropyPatcher, model_kind="cnn", default_threshold=DEFAULT_THRESHOLD),
                        incremental=True, needs_model=True,
                        summary="a patch starts where the 2-byte-context CNN's next-byte entropy exceeds a threshold")]
