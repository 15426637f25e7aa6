"""FLOPs per byte, by component, for BLT and for the baselines.

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

BLT components (``d`` = d_local, ``D`` = d_global, ``k`` slots, ``L`` layers, ``V`` = 260):

- local encoder: ``L`` layers over ``N`` bytes (window ``W_enc``).
- encoder cross-attention (``cross_attention`` encoder, ``C`` cross layers): pooled-slot
  projection ``2 P d (k d)`` (once, or per cross layer with ``repool``); per cross layer
  ``q, o`` on ``P k`` slots ``2 * 2 P k d d``, ``k, v`` on ``N`` bytes ``2 * 2 N d d`` and
  attention with ``S = k N W_x`` pairs (each slot reads the bytes of ``W_x`` patches; dense:
  ``P k N``).
- global transformer: input projection ``2 P (k d) D`` when ``k d != D``; layers over ``P``.
- decoder cross-attention (``cross_attention`` decoder): projection ``2 P D (k d)``; per cross
  layer ``q, o`` on ``N`` bytes, ``k, v`` on ``P k`` slots, ``S = N k W_x`` (dense ``N P k``).
  The ``add`` decoder has a projection ``2 P D d`` when ``D != d`` and no attention.
- local decoder: ``L`` layers over ``N`` bytes, plus the output head ``2 N d V``.
- entropy model: whatever the patcher computes per byte (measured once with
  ``FlopCounterMode`` on a sample row: the entropy models' matmuls; 0 for rule-based patchers).
  It is an inference cost, reported separately and not part of the training budget (patches are
  computed once per document and cached).

Baselines (:mod:`blt.baselines.token_lm`, ``T`` tokens per row, ``T = N / a`` for BPE tokens
of ``a`` bytes, ``T = N`` for bytes): the global trunk's layers over ``T`` plus the output head
``2 T D V_tok``.
"""

from __future__ import annotations

from typing import Any

import attrs

from blt.core.errors import UnavailableError
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


def stack_flops(n_layers: int, T: float, d: int, heads: int, kv_heads: int | None, ffn: int | None,
                window: int | None, attention: str) -> float:
    one = layer_flops(T, d, heads, kv_heads, ffn, attention_pairs(T, window, attention))
    return n_layers * (one["linear"] + one["attention"])


def cross_layer_flops(n_queries: float, n_keys: float, d: int, pairs: float) -> float:
    """One cross-attention block: q/o projections on queries, k/v on keys, attention over ``pairs``."""
    return 2 * 2 * n_queries * d * d + 2 * 2 * n_keys * d * d + 4 * d * pairs


def blt_forward_flops(config: Any, n_bytes: float, n_patches: float, attention: str = "causal") -> dict[str, float]:
    """Forward FLOPs of one BLT row by component (not per byte). ``config``: the experiment."""
    m, enc, dec = config.model, config.encoder, config.decoder
    d, D, N, P = m.d_local, m.d_global, float(n_bytes), float(n_patches)
    out: dict[str, float] = {}
    if enc.kind not in ("cross_attention", "pooling") or dec.kind not in ("cross_attention", "add"):
        raise UnavailableError(f"no FLOP formula for encoder {enc.kind!r} / decoder {dec.kind!r}; blt.flops knows "
                               "encoders cross_attention, pooling and decoders cross_attention, add")
    out["local_encoder"] = stack_flops(enc.layers, N, d, enc.heads, enc.kv_heads, enc.ffn_dim, enc.window, attention)
    in_dim = d
    if enc.kind == "cross_attention":
        k = enc.k
        n_cross = enc.layers if enc.cross_all_layers else 1
        n_pool = n_cross if enc.repool else 1
        pairs = P * k * N if attention == "dense" else k * N * min(enc.cross_window, P)
        out["encoder_cross_attention"] = n_pool * 2 * P * d * k * d + n_cross * cross_layer_flops(P * k, N, d, pairs)
        in_dim = k * d
    glob = 2 * P * in_dim * D if in_dim != D else 0.0
    out["global"] = glob + stack_flops(m.global_layers, P, D, m.global_heads, m.global_kv_heads, m.global_ffn, None, attention)
    if dec.kind == "cross_attention":
        k = dec.k
        n_cross = dec.layers if dec.cross_all_layers else 1
        pairs = N * P * k if attention == "dense" else N * k * min(dec.cross_window, P)
        out["decoder_cross_attention"] = 2 * P * D * k * d + n_cross * cross_layer_flops(N, P * k, d, pairs)
    elif D != d:
        out["decoder_cross_attention"] = 2 * P * D * d  # the add decoder's projection
    out["local_decoder"] = stack_flops(dec.layers, N, d, dec.heads, dec.kv_heads, dec.ffn_dim, dec.window, attention) + 2 * N * d * VOCAB
    return out


def token_lm_forward_flops(model_config: Any, vocab: int, n_tokens: float, attention: str = "causal") -> dict[str, float]:
    """Forward FLOPs of one token-LM row (baselines) by component."""
    m = model_config
    T = float(n_tokens)
    return {"global": stack_flops(m.global_layers, T, m.d_global, m.global_heads, m.global_kv_heads, m.global_ffn, None, attention),
            "head": 2 * T * m.d_global * vocab}


@attrs.frozen
class FlopsReport:
    """Per-byte forward FLOPs by component (``entropy_model`` included, inference only)."""

    forward_by_component: dict[str, float]
    avg_patch_size: float

    @property
    def forward_per_byte(self) -> float:
        """The trained model's forward FLOPs per byte (entropy model excluded)."""
        return sum(v for k, v in self.forward_by_component.items() if k != "entropy_model")

    @property
    def train_per_byte(self) -> float:
        return 3 * self.forward_per_byte

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


def report(config: Any, model: Any, patcher: Any, *, avg_patch_size: float, seq_len: int | None = None) -> FlopsReport:
    """Per-byte FLOPs of an experiment's model on rows of ``seq_len`` bytes (default ``[data] seq_len``)."""
    N = float(seq_len or config.data.seq_len)
    if getattr(model, "loss_sum", False):  # a token-LM baseline: T tokens per row
        tokens = N if getattr(model, "tokenizer", None) is None else N / avg_patch_size
        parts = token_lm_forward_flops(config.model, model.vocab, tokens)
    else:
        parts = blt_forward_flops(config, N, 1 + N / avg_patch_size)
    per_byte = {k: v / N for k, v in parts.items()}
    per_byte["entropy_model"] = patcher_flops_per_byte(patcher)
    return FlopsReport(per_byte, avg_patch_size)


__all__ = ["FlopsReport", "attention_pairs", "blt_forward_flops", "layer_flops", "report", "token_lm_forward_flops"]
