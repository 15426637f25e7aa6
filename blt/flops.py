"""FLOP formulas shared by components, and the per-byte report that sums what they declare.

Every component owns its count (``flops()`` next to its ``forward``, in its plugin file); this
module holds the shared layer and stack formulas and :func:`report`.

Conventions: one multiply-add = 2 FLOPs; only matrix products count (norms, softmax, pooling,
gathers and hash-embedding lookups are zero-FLOP, as in the paper's accounting); training FLOPs =
3 x forward (backward = 2 x forward). Counts are per row of ``N`` input bytes and ``P`` patches,
then divided by ``N``. For a dataset, ``P = 1 + N / a`` with ``a`` the measured average patch size
(the row's first byte is its own patch).

Transformer layer over ``T`` positions, width ``d``, ``H`` heads of ``h = d / H``, ``G`` kv heads,
SwiGLU hidden ``F``, attending ``S`` (query, key) pairs::

    qkvo = 2 T (d H h + 2 d G h + H h d)        ffn = 2 T (3 d F)        attn = 4 H h S

``S`` is where attention is sequence dependent. ``attention="causal"`` (the default, the cost of
the algorithm) counts only allowed pairs: a causal window ``W`` over ``T`` positions gives
``S = sum_t min(t + 1, W)`` (``W = T`` for full causal); document blocking is ignored (an upper
bound). ``attention="dense"`` counts ``S = T * T_keys``, what a dense-mask kernel computes (and what
``torch.utils.flop_counter.FlopCounterMode`` reports for eager or SDPA attention).

Each encoder / decoder plugin documents its own formula next to its ``flops()``; the BLT model
adds the global transformer and the output head ``2 N d V`` (``V`` = 260). The entropy model is
measured: whatever the patcher computes per byte (``FlopCounterMode`` on a sample row; 0 for
rule-based patchers). It is an inference cost, reported separately and not part of the training
budget (patches are computed once per document and cached).
"""

from __future__ import annotations

from typing import Any

import attrs

from blt.model.blocks import ffn_hidden_dim

VOCAB = 260


def attention_pairs(T: int | float, window: int | None, attention: str, keys: int | float | None = None) -> float:
    """Allowed (query, key) pairs of causal self-attention with a window (``"causal"``) or all pairs (``"dense"``)."""
    if attention == "dense":
        return float(T) * float(keys if keys is not None else T)
    W = T if window is None else min(window, T)
    # sum_{t=0}^{T-1} min(t + 1, W) = W (W + 1) / 2 + (T - W) W
    return W * (W + 1) / 2 + (T - W) * W


def layer_flops(T: float, d: int, heads: int, kv_heads: int | None, ffn: int | None, pairs: float) -> dict[str, float]:
    """``{"linear", "attention"}`` FLOPs of one pre-norm transformer layer over ``T`` positions."""
    h = d // heads
    G = kv_heads or heads
    F = ffn or ffn_hidden_dim(d)
    linear = 2 * T * (d * heads * h + 2 * d * G * h + heads * h * d) + 2 * T * 3 * d * F
    return {"linear": linear, "attention": 4 * heads * h * pairs}


def cross_layer_flops(n_queries: float, n_keys: float, d: int, pairs: float) -> float:
    """One cross-attention block: q/o projections on queries, k/v on keys, attention over ``pairs``."""
    return 2 * 2 * n_queries * d * d + 2 * 2 * n_keys * d * d + 4 * d * pairs


def layers_flops(layers: Any, T: float, window: int | None, attention: str) -> float:
    """Forward FLOPs of a stack of :class:`blt.model.blocks.TransformerLayer` over ``T`` positions,
    read off the layers' own shapes (so a component never restates its widths)."""
    total = 0.0
    for layer in layers:
        attn = layer.self_attn
        dim = attn.q_proj.in_features
        one = layer_flops(T, dim, attn.heads, attn.kv_heads, layer.mlp.gate_proj.out_features,
                          attention_pairs(T, window, attention))
        total += one["linear"] + one["attention"]
    return total


def linear_flops(rows: float, layer: Any) -> float:
    """``2 * rows * in * out`` for an ``nn.Linear`` (0 for None)."""
    return 0.0 if layer is None else 2.0 * rows * layer.in_features * layer.out_features


@attrs.frozen
class FlopsReport:
    """Per-byte forward FLOPs by component (``entropy_model`` included, inference only)."""

    forward_by_component: dict[str, float]
    avg_patch_size: float             # bytes per patch
    bytes_per_position: float = 1.0   # < 1 when the stream holds non-byte tokens (BPE delimiters)

    @property
    def forward_per_byte(self) -> float:
        """The trained model's forward FLOPs per byte (entropy model excluded)."""
        return sum(v for k, v in self.forward_by_component.items() if k != "entropy_model")

    @property
    def train_per_byte(self) -> float:
        return 3 * self.forward_per_byte

    @property
    def train_per_position(self) -> float:
        """Training FLOPs per row position (what a step of ``seq_len`` positions costs, per position)."""
        return self.train_per_byte * self.bytes_per_position

    @property
    def inference_per_byte(self) -> float:
        return self.forward_per_byte + self.forward_by_component.get("entropy_model", 0.0)


def patcher_flops_per_byte(patcher: Any, n_bytes: int = 512) -> float:
    """Matmul FLOPs per byte the patcher spends (its entropy model), measured on a sample row."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from blt.corpus import sample_text_path
    from blt.tokens import encode

    tokens = encode(sample_text_path().read_bytes())
    tokens = tokens.repeat(n_bytes // tokens.numel() + 1)[:n_bytes]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        patcher.patch(tokens.unsqueeze(0), include_next_token=True)
    return counter.get_total_flops() / n_bytes


def report(config: Any, model: Any, patcher: Any, *, avg_patch_size: float, seq_len: int | None = None,
           bytes_per_position: float = 1.0) -> FlopsReport:
    """Per-byte FLOPs of a model on rows of ``seq_len`` positions (default ``[data] seq_len``): the
    model reports its components (``model.flops``), the patcher's entropy model is measured.

    ``avg_patch_size``: positions per patch of the stream. ``bytes_per_position``: text bytes per
    stream position (1 unless the patcher adds tokens, e.g. BPE delimiters), so FLOPs are per
    byte of text and the average patch is in bytes."""
    N = float(seq_len or config.data.seq_len)
    per_byte = {k: v / (N * bytes_per_position) for k, v in model.flops(N, avg_patch_size).items()}
    per_byte["entropy_model"] = patcher_flops_per_byte(patcher)
    return FlopsReport(per_byte, avg_patch_size * bytes_per_position, bytes_per_position)


__all__ = ["FlopsReport", "attention_pairs", "cross_layer_flops", "layer_flops", "layers_flops", "linear_flops", "report"]
