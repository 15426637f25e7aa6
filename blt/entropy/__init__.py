"""Small byte LMs that decide entropy patch boundaries (owned by the entropy patchers, not a plugin family).

- :mod:`blt.entropy.transformer` / :mod:`blt.entropy.cnn`: the two models;
- :mod:`blt.entropy.compute`: ``entropies(model, tokens)``;
- :mod:`blt.entropy.rules`: the threshold rules; :mod:`blt.entropy.patcher`: the shared patcher;
- :mod:`blt.entropy.io`: safetensors + JSON save/load; :mod:`blt.entropy.train`; :mod:`blt.entropy.calibrate`.
"""

from __future__ import annotations

from blt.entropy.cnn import CNNEntropyConfig, CNNEntropyModel
from blt.entropy.compute import entropies, entropy_from_logits
from blt.entropy.io import EntropyModelError, build_entropy_model, load_entropy_model, save_entropy_model, shipped_model_path
from blt.entropy.transformer import TransformerEntropyConfig, TransformerEntropyModel

__all__ = [
    "CNNEntropyConfig",
    "CNNEntropyModel",
    "EntropyModelError",
    "TransformerEntropyConfig",
    "TransformerEntropyModel",
    "build_entropy_model",
    "entropies",
    "entropy_from_logits",
    "load_entropy_model",
    "save_entropy_model",
    "shipped_model_path",
]
