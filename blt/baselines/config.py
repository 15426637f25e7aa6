"""``[baseline]``: which model family an experiment trains.

- ``"none"`` (default): the BLT model from ``blt.build_model`` (patcher, encoder, global
  transformer, decoder).
- ``"byte"``: the byte-level transformer: a byte embedding, the global trunk shape (``[model]
  d_global``, ``global_layers``, ...) run on every byte, and a 260-way softmax. No local stacks,
  no patches: every byte is a step of the big model. (A BLT with the ``byte`` patcher is close but
  keeps at least one local layer on each side, so it is not the plain baseline.)
- ``"bpe_token"``: a token-level transformer on the tokens of the ``bpe`` patcher's tokenizer: a
  token embedding, the same global trunk shape (``[model] d_global``, ``global_layers``,
  ``global_heads``...) and a softmax over the BPE vocabulary. It reads the same byte rows as BLT
  and reports bits per byte (token cross-entropy over the bytes its target tokens cover).
"""

from __future__ import annotations

from typing import Literal

from blt.core.config import Config


class BaselineConfig(Config):
    kind: Literal["none", "byte", "bpe_token"] = "none"


__all__ = ["BaselineConfig"]
