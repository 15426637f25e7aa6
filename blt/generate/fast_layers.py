"""Single-query versions of the model's layers for cached generation: the same maths, fewer calls.

A per-byte step runs a handful of tiny matmuls, so its cost is dispatch, not arithmetic. These
functions compute exactly what :class:`blt.model.blocks.TransformerLayer` and
:class:`blt.model.cross_attention.CrossAttention` compute, for queries whose keys sit in a
preallocated cache, with fewer kernel launches and no module-call overhead:

- the q, k and v projections and RoPE's rotated copies of q and k are one matmul (their weights
  stacked once per generation), and so are SwiGLU's gate and up projections; the global stack,
  whose weights leave the cache between its steps, rotates after a plain q/k/v matmul instead;
- an RMSNorm followed by a projection is the projection with the norm's weight folded in, scaled
  by the per-row ``rsqrt(mean(x^2) + eps)`` (the same value, rounded in another order);
- RoPE is ``y cos + rot(y) sin`` with the tables of the step's position looked up once and
  shared by every layer of a stack;
- the new key and value are written into the cache slot in place and one ``scaled_dot_product_attention``
  call reads the cache with the step's boolean mask (built once per step and stack).

Weights are read from the modules when a step object is built (one generation), so a model
changed between calls is picked up by the next call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from blt.model.blocks import RMSNorm, TransformerLayer
from blt.model.cross_attention import CrossAttention


def norm(x: torch.Tensor, module: RMSNorm) -> torch.Tensor:
    if x.dtype in (torch.float32, torch.float64) and module.weight.dtype == x.dtype:
        return F.rms_norm(x, (x.shape[-1],), module.weight, module.eps)
    return module(x)


def rms_scale(x: torch.Tensor, eps: float) -> torch.Tensor:
    """``rsqrt(mean(x^2) + eps)`` per row ``[..., 1]`` (statistics in float32 for half precision)."""
    x = x if x.dtype in (torch.float32, torch.float64) else x.float()
    return torch.rsqrt(torch.mean(x * x, dim=-1, keepdim=True).add_(eps))


# rows_linear pads weights of at least this many elements (1 MiB in float32) and input width.
PAD_FROM_ELEMENTS, PAD_FROM_WIDTH = 1 << 18, 512


def rows_linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``F.linear(x, w)``; on the CPU, 2 or 3 rows times a large weight (input width >= 512) run
    as 4 rows (zero rows appended, then dropped): MKL's 2-3 row kernels read such a weight slower
    than its 4-row kernel, so 4 rows cost less than 2 (one thread, fp32, weights streamed from
    memory, us for 1 / 2 / 3 / 4 rows: [1536, 512] 306 / 499 / 547 / 376, [512, 1536]
    226 / 349 / 408 / 316, [512, 512] 106 / 152 / 173 / 137; no gain below width 512). This is
    speculative verification's case (a few patches of one row) and a batch's few closing rows.
    Rows are independent in a matmul, so the kept rows' values are the same maths."""
    n = x.shape[0]
    if (1 < n < 4 and x.dim() == 2 and w.shape[1] >= PAD_FROM_WIDTH and w.numel() >= PAD_FROM_ELEMENTS
            and x.device.type == "cpu"):
        return F.linear(F.pad(x, (0, 0, 0, 4 - n)), w)[:n]
    return F.linear(x, w)


def normed_linear(x: torch.Tensor, w_folded: torch.Tensor, eps: float) -> torch.Tensor:
    """``linear(norm(x), W)`` with the norm's weight already folded into ``w_folded``: one fused
    ``rms_norm`` (no weight) and the matmul for float32/float64, else the matmul scaled by
    :func:`rms_scale` (statistics in float32, as the model computes them)."""
    if x.dtype in (torch.float32, torch.float64):
        return rows_linear(F.rms_norm(x, (x.shape[-1],), None, eps), w_folded)
    return rows_linear(x, w_folded).mul_(rms_scale(x, eps))


def rotated_rows(w_ND: torch.Tensor) -> torch.Tensor:
    """Rows of ``w`` whose outputs are RoPE's pair rotation of ``w``'s: ``(y0, y1) -> (-y1, y0)``."""
    pairs = w_ND.unflatten(0, (-1, 2))
    return torch.stack((-pairs[:, 1], pairs[:, 0]), dim=1).flatten(0, 1)


class FastLayer:
    """One :class:`TransformerLayer` for ``B`` rows, one query each, keys in a cache ``[B, H_kv, C, hd]``.

    ``norm(x) W^T = rms_scale(x) * (x (W diag(w))^T)``: the norm's weight is folded into the
    projection after it, and its per-row scale is applied to the projection's output. RoPE
    rotates ``y = x W^T`` by channel pairs, ``y cos + rot(y) sin``, and ``rot(y)`` is a projection
    with permuted, negated rows (:func:`rotated_rows`), so q, k, their rotations and v come out of
    one matmul.
    """

    def __init__(self, layer: TransformerLayer, rotate_in_matmul: bool = True) -> None:
        attn, mlp = layer.self_attn, layer.mlp
        self.heads, self.kv_heads, self.head_dim = attn.heads, attn.kv_heads, attn.head_dim
        self.eps1, self.eps2 = layer.input_layernorm.eps, layer.post_attention_layernorm.eps
        w_qk = torch.cat([attn.q_proj.weight, attn.k_proj.weight], dim=0)
        # rotate_in_matmul=False: rot(y) by negating and swapping channel pairs after the matmul
        # (two more small ops, a matmul with 40% fewer weights to read: the better trade for a
        # stack whose weights do not stay in cache between its steps, the global one)
        self.rotate_in_matmul = rotate_in_matmul
        w_all = torch.cat([w_qk, rotated_rows(w_qk), attn.v_proj.weight] if rotate_in_matmul else [w_qk, attn.v_proj.weight], dim=0)
        self.w_in = w_all * layer.input_layernorm.weight
        self.w_o = attn.o_proj.weight
        self.w_gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight], dim=0) * layer.post_attention_layernorm.weight
        self.w_down = mlp.down_proj.weight
        self.ffn = mlp.gate_proj.weight.shape[0]
        self.n_qk = w_qk.shape[0]
        # The model rotates float32 activations in float32 (its cos/sin tables are float32) and any
        # other dtype in float32 too, casting back; the same here.
        self.float_rope = self.w_in.dtype != torch.float32

    def __call__(self, x_BD: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                 k_BHCD: torch.Tensor, v_BHCD: torch.Tensor, slot: torch.Tensor | int, used: int,
                 mask: torch.Tensor | None, rows: torch.Tensor | int | None = None) -> torch.Tensor:
        """``x_BD`` -> the layer's output ``[B, D]``. ``cos``/``sin``: the RoPE tables of the query's
        position (``[hd]``, or ``[B, 1, hd]`` per row). The new key/value go to cache slot ``slot``
        (an int for every row, or one per row), in cache rows ``rows`` (None: all, in order; an int:
        that one row, with an int slot); the
        query reads slots ``[0, used)`` of those rows where ``mask`` ``[B, 1, 1, used]`` allows."""
        B = x_BD.shape[0]
        H, Hk, hd = self.heads, self.kv_heads, self.head_dim
        qk, v = self.project(x_BD, cos, sin)
        if (rows is None or isinstance(rows, int)) and isinstance(slot, int):
            if rows is not None:  # one cache row (B == 1): views of it, no copies
                k_BHCD, v_BHCD = k_BHCD.narrow(0, rows, 1), v_BHCD.narrow(0, rows, 1)
            k_BHCD.select(2, slot).copy_(qk.narrow(1, H, Hk))
            v_BHCD.select(2, slot).copy_(v)
            k_read, v_read = k_BHCD.narrow(2, 0, used), v_BHCD.narrow(2, 0, used)
        else:
            index = torch.arange(B, device=x_BD.device) if rows is None else rows
            k_BHCD[index, :, slot] = qk[:, H:]
            v_BHCD[index, :, slot] = v
            # narrow, then select rows: a copy of the rows' filled slots only (advanced indexing
            # of the whole cache costs several times more per call)
            k_read = k_BHCD.narrow(2, 0, used) if rows is None else k_BHCD.narrow(2, 0, used).index_select(0, rows)
            v_read = v_BHCD.narrow(2, 0, used) if rows is None else v_BHCD.narrow(2, 0, used).index_select(0, rows)
        o = F.scaled_dot_product_attention(qk[:, :H, None], k_read, v_read, attn_mask=mask, enable_gqa=H != Hk)
        return self.finish(x_BD, o.view(B, H * hd))

    def queries(self, x_MD: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, k_BHCD: torch.Tensor,
                v_BHCD: torch.Tensor, row: int, slots_M: torch.Tensor, used: int, mask: torch.Tensor | None) -> torch.Tensor:
        """``M`` positions of one cache row at once -> ``[M, D]``: their keys/values go to slots
        ``slots_M`` of row ``row``, and the queries, as one sequence, read slots ``[0, used)``
        where ``mask`` ``[1, 1, M, used]`` allows (the row's cache is read once, not once per
        query). ``cos``/``sin``: ``[M, 1, hd]``."""
        M = x_MD.shape[0]
        H, Hk, hd = self.heads, self.kv_heads, self.head_dim
        qk, v = self.project(x_MD, cos, sin)
        k_1HCD, v_1HCD = k_BHCD.narrow(0, row, 1), v_BHCD.narrow(0, row, 1)
        k_1HCD[0].index_copy_(1, slots_M, qk[:, H:].transpose(0, 1))
        v_1HCD[0].index_copy_(1, slots_M, v.transpose(0, 1))
        q_1HMD = qk[:, :H].transpose(0, 1).unsqueeze(0)
        o = F.scaled_dot_product_attention(q_1HMD, k_1HCD.narrow(2, 0, used), v_1HCD.narrow(2, 0, used),
                                           attn_mask=mask, enable_gqa=H != Hk)
        return self.finish(x_MD, o[0].transpose(0, 1).reshape(M, H * hd))

    def project(self, x_BD: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(RoPE-rotated q and k ``[B, H + H_kv, hd]``, v ``[B, H_kv, hd]``) of ``B`` queries."""
        B = x_BD.shape[0]
        H, Hk, hd, n = self.heads, self.kv_heads, self.head_dim, self.n_qk
        y = normed_linear(x_BD, self.w_in, self.eps1)
        a = y[:, :n].view(B, H + Hk, hd)
        if self.rotate_in_matmul:
            b, v = y[:, n : 2 * n].view(B, H + Hk, hd), y[:, 2 * n :].view(B, Hk, hd)
        else:  # rot(y): channel pairs (y0, y1) -> (-y1, y0), exactly what rotated_rows' outputs are
            pairs = a.view(B, H + Hk, hd // 2, 2)
            b, v = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).view(B, H + Hk, hd), y[:, n:].view(B, Hk, hd)
        if self.float_rope:
            qk = (a.float() * cos + b.float() * sin).to(y.dtype)  # the model's own ops: no fused multiply-add
        else:
            qk = torch.addcmul(a * cos, b, sin)
        return qk, v

    def finish(self, x_BD: torch.Tensor, o_BE: torch.Tensor) -> torch.Tensor:
        """The output projection, residual and SwiGLU MLP after attention (``o_BE``: heads concatenated)."""
        h = x_BD + rows_linear(o_BE, self.w_o)
        gate_up = normed_linear(h, self.w_gate_up, self.eps2)
        return h + rows_linear(F.silu(gate_up[:, : self.ffn]).mul_(gate_up[:, self.ffn :]), self.w_down)


class FastCross:
    """One :class:`CrossAttention` whose keys/values (normed and projected) are computed when its
    slots change, not at every query."""

    def __init__(self, cross: CrossAttention) -> None:
        self.cross = cross
        self.heads, self.head_dim = cross.heads, cross.head_dim
        self.w_kv = torch.cat([cross.k_proj.weight, cross.v_proj.weight], dim=0)
        self.w_q = cross.q_proj.weight * cross.q_norm.weight  # q_norm's weight folded in (see FastLayer)

    def keys(self, kv_BKD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(k, v)`` as ``[B, H, K, hd]`` for slots ``kv_BKD``."""
        B, K, D = kv_BKD.shape
        kv = F.linear(norm(kv_BKD, self.cross.k_norm), self.w_kv).view(B, K, 2, self.heads, self.head_dim)
        return kv[:, :, 0].transpose(1, 2), kv[:, :, 1].transpose(1, 2)

    def __call__(self, x_BD: torch.Tensor, k_BHKD: torch.Tensor, v_BHKD: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``x + o_proj(attn(q_norm(x)))`` for one query per row ``[B, D]``, or ``Q`` per row
        ``[B, Q, D]`` (the module's own residual included); ``mask`` ``[B, 1, 1 or Q, K]`` or None."""
        shape = x_BD.shape
        x_BQD = x_BD.view(shape[0], -1, shape[-1])
        B, Q, D = x_BQD.shape
        q = normed_linear(x_BQD, self.w_q, self.cross.q_norm.eps).view(B, Q, self.heads, self.head_dim)
        o = F.scaled_dot_product_attention(q.transpose(1, 2), k_BHKD, v_BHKD, attn_mask=mask)
        return x_BD + F.linear(o.transpose(1, 2).reshape(shape), self.cross.o_proj.weight)
