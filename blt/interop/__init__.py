"""Interop with Hugging Face transformers' BLT port (``transformers.BltForCausalLM``).

```python
model, patcher = blt.interop.from_transformers(hf_model)      # in memory (needs transformers)
model, patcher = blt.interop.load_hf_checkpoint("saved_dir")   # config.json + safetensors (no transformers)
lengths = patcher.patch(tokens, include_next_token=True).lengths
logits = model(tokens, lengths)
notes = blt.interop.save_hf(model, experiment, patcher, "out")  # the way back (transformers); `blt export`
hf_lengths = blt.interop.hf_patch_lengths(patcher, tokens)      # for hf(..., patch_lengths=hf_lengths)
```

The patcher:

- the port patches by entropy in ``forward`` (``patch_in_forward``, ``patching_mode == "entropy"``,
  ``patch_size`` set): an ``entropy`` patcher holding the converted entropy model, with the port's
  ``patching_threshold`` (strict ``>``) and ``max_patch_length``;
- otherwise (no patcher, or the threshold disabled): the patcher blt's exporter recorded under
  ``blt_patcher`` (one the port lacks, e.g. ``strided``), else a ``byte`` patcher, one byte per
  patch, which is what the port itself falls back to. Callers may pass any lengths to the model.

Lengths: the port's patcher returns lengths over the N given bytes (sum N; a final zero-length
patch when position N would start a patch). blt's ``patch(..., include_next_token=True)`` gives
the same patches with the next-token position counted (sum N + 1); ``include_next_token=False``
gives the port's lengths without that trailing zero. :func:`hf_lengths_to_blt` converts the
port's lengths for ``model(tokens, lengths)``.

Differences to know (the converted model equals the port on everything else):

- blt's local (and entropy-model) attention never crosses an EOS inside a row; the port's does.
  Rows with EOS only at the end (``blt.tokens.encode``) are unaffected.
- When ``max_patch_length`` is set, the port splits its lengths and drops the trailing zero-length
  patch before the model sees it, so its last byte then reads one patch earlier. blt's
  ``include_next_token=True`` lengths keep the next-token patch: only the last position's logits
  may differ. For the port's exact behaviour there, use
  ``hf_lengths_to_blt(patcher.patch(row).lengths)`` (one unpadded row).

transformers is imported only by :func:`from_transformers`, lazily.
"""

from __future__ import annotations

import pathlib
from typing import Any

import torch

from blt.core.errors import UnavailableError
from blt.interop.checkpoint import read_checkpoint
from blt.interop.convert import convert, map_state
from blt.interop.export import hf_patch_lengths, save_hf
from blt.interop.hf_config import HFBlt, InteropError, experiment_from_hf, read_hf_config

INSTALL_HINT = "install blt-lab[interop] (pip install 'blt-lab[interop]') to use transformers models"


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:
        raise UnavailableError(f"transformers is not installed ({exc}); {INSTALL_HINT}") from None
    if not hasattr(transformers, "BltForCausalLM"):
        raise UnavailableError(f"transformers {transformers.__version__} has no BltForCausalLM (added in 4.57); {INSTALL_HINT}")
    return transformers


def from_transformers(hf_model: Any, *, attention: str = "sdpa", registry: Any = None) -> tuple[torch.nn.Module, Any]:
    """Convert an in-memory ``transformers.BltForCausalLM`` -> ``(blt model, patcher)`` (eval mode, float32)."""
    transformers = _transformers()
    if not isinstance(hf_model, transformers.BltForCausalLM):
        raise InteropError(f"expected a transformers.BltForCausalLM, got {type(hf_model).__name__}")
    config = hf_model.config.to_dict()
    tensors = dict(hf_model.state_dict())
    return convert(config, tensors, registry=registry, attention=attention)


def load_hf_checkpoint(directory: str | pathlib.Path, *, attention: str = "sdpa", registry: Any = None) -> tuple[torch.nn.Module, Any]:
    """Convert a directory written by ``BltForCausalLM.save_pretrained`` -> ``(blt model, patcher)``.

    Reads ``config.json`` and the safetensors weights directly; transformers is not needed.
    """
    config, tensors = read_checkpoint(directory)
    return convert(config, tensors, registry=registry, attention=attention)


def hf_lengths_to_blt(lengths: torch.Tensor) -> torch.Tensor:
    """The port's patch lengths (sum N) -> blt's model lengths (sum N + 1) with the same logits.

    The next-token position joins the last column, which is exactly how the port's decoder treats
    it (its trailing zero-length patch becomes ``[1]``). Give rows as the port's patcher returns them
    for one row: in a right-padded batch the last column is padding, and the port itself then
    mis-assigns the last byte."""
    lengths = lengths.long().clone()
    if lengths.dim() == 1:
        lengths[-1] += 1
        return lengths
    lengths[:, -1] += 1
    return lengths


__all__ = [
    "HFBlt",
    "InteropError",
    "experiment_from_hf",
    "from_transformers",
    "hf_lengths_to_blt",
    "hf_patch_lengths",
    "load_hf_checkpoint",
    "map_state",
    "read_hf_config",
    "save_hf",
]
