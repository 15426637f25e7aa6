"""Single-query versions of the model's layers for cached generation: the same maths, fewer calls.

A per-byte step runs a handful of tiny matmuls, so its cost is dispatch, not arithmetic. These
functions compute exactly what :class:`blt.model.blocks.TransformerLayer` and
:class:`blt.model.cross_attention.CrossAttention` compute, for queries whose keys sit in a
preallocated cache, with fewer kernel launches and no module-call overhead:

- the q, k and v projections and RoPE's rotated copies of q and k are one matmul (their weights
  stacked once per generation), and so are SwiGLU's gate and up projections; the global stack,
  whose weights leave the cache between its steps, rotates after a plain q/k/v matmul instead;
- an RMSNorm followed by a projection is the projection with the norm's weight folded in, divided
  by the per-row ``sqrt(sum(x^2) + D eps)`` from two calls (the same value, rounded in another
  order); small weights are kept transposed, so each projection is one plain ``mm``;
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


STAT_DTYPES = (torch.float32, torch.float64)  # dtypes whose norm statistics are computed in their own dtype


def rms_scale(x: torch.Tensor, eps: float) -> torch.Tensor:
    """``rsqrt(mean(x^2) + eps)`` per row ``[..., 1]`` (statistics in float32 for half precision)."""
    x = x if x.dtype in STAT_DTYPES else x.float()
    return torch.rsqrt(torch.mean(x * x, dim=-1, keepdim=True).add_(eps))


def rms_denominator(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``sqrt(sum(x^2) + D eps)`` per row ``[..., 1]`` with ``c = sqrt(D eps)``: ``sqrt(D)`` times
    RMSNorm's ``sqrt(mean(x^2) + eps)``, in two calls (``vector_norm``, ``hypot``) where
    ``F.rms_norm`` runs about seven on the CPU (9 us against 3 us for one row of 64)."""
    return torch.hypot(torch.linalg.vector_norm(x, 2, -1, True), c)


# Weights up to this many elements are copied transposed (row-major [in, out]): ``mm`` then runs
# without a transpose (about 1 us less per call at these sizes); larger ones are used as views.
TRANSPOSE_UP_TO = 1 << 20
# rows_mm pads weights of at least this many elements (1 MiB in float32) and input width.
PAD_FROM_ELEMENTS, PAD_FROM_WIDTH = 1 << 18, 512


def mm_weight(w_OD: torch.Tensor) -> torch.Tensor:
    """``w^T`` ``[D, O]`` for :func:`rows_mm`: a contiguous copy for small weights, else a view."""
    return w_OD.t().contiguous() if w_OD.numel() <= TRANSPOSE_UP_TO else w_OD.t()


def rows_mm(x: torch.Tensor, w_DO: torch.Tensor) -> torch.Tensor:
    """``x @ w_DO`` for ``x`` ``[N, D]``; on the CPU, 2 or 3 rows times a large weight (input width
    >= 512) run as 4 rows (zero rows appended, then dropped): MKL's 2-3 row kernels read such a
    weight slower than its 4-row kernel, so 4 rows cost less than 2 (one thread, fp32, weights
    streamed from memory, us for 1 / 2 / 3 / 4 rows: [1536, 512] 306 / 499 / 547 / 376,
    [512, 1536] 226 / 349 / 408 / 316, [512, 512] 106 / 152 / 173 / 137; no gain below width
    512). This is speculative verification's case (a few patches of one row) and a batch's few
    closing rows. Rows are independent in a matmul, so the kept rows' values are the same maths."""
    n = x.shape[0]
    if 1 < n < 4 and w_DO.shape[0] >= PAD_FROM_WIDTH and w_DO.numel() >= PAD_FROM_ELEMENTS and x.device.type == "cpu":
        return torch.mm(F.pad(x, (0, 0, 0, 4 - n)), w_DO)[:n]
    return torch.mm(x, w_DO)


def residual_mm(h_ND: torch.Tensor, x_NE: torch.Tensor, w_EO: torch.Tensor) -> torch.Tensor:
    """``h + x @ w`` (a residual and the projection into it), one ``addmm`` where no padding applies."""
    if w_EO.shape[0] >= PAD_FROM_WIDTH and w_EO.numel() >= PAD_FROM_ELEMENTS:
        return h_ND + rows_mm(x_NE, w_EO)
    return torch.addmm(h_ND, x_NE, w_EO)


class FastLinear:
    """An ``nn.Linear`` on rows ``[..., D]`` as one ``mm`` (``addmm`` with a bias) of its transposed
    weight: a module call and ``F.linear`` cost a few microseconds more per call, which is most of a
    single-row projection's time. ``None`` (no projection) passes its input through."""

    def __init__(self, linear: torch.nn.Linear | None) -> None:
        self.w_DO = None if linear is None else mm_weight(linear.weight)
        self.bias = None if linear is None else linear.bias

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.w_DO is None:
            return x
        x_ND = x.reshape(-1, x.shape[-1])
        y = rows_mm(x_ND, self.w_DO) if self.bias is None else torch.addmm(self.bias, x_ND, self.w_DO)
        return y.view(*x.shape[:-1], y.shape[-1])


class NormedProjection:
    """``linear(norm(x), W)`` for an RMSNorm followed by a projection ``W`` ``[O, D]``.

    ``norm(x) W^T = (x (W diag(g))^T) / rms(x)``: the norm's weight ``g`` is folded into the
    projection and the per-row statistic divides the projection's output (the same value,
    rounded in another order). float32/float64: ``W diag(g) sqrt(D)`` divided by
    :func:`rms_denominator`; other dtypes: ``W diag(g)`` times :func:`rms_scale` (statistics in
    float32, as the model computes them)."""

    def __init__(self, norm: RMSNorm, w_OD: torch.Tensor) -> None:
        D = w_OD.shape[1]
        self.eps, self.own_stats = norm.eps, w_OD.dtype in STAT_DTYPES
        folded = w_OD * norm.weight
        self.w_DO = mm_weight(folded * D**0.5 if self.own_stats else folded)
        self.c = torch.tensor((D * norm.eps) ** 0.5, dtype=w_OD.dtype, device=w_OD.device) if self.own_stats else None

    def __call__(self, x_ND: torch.Tensor) -> torch.Tensor:
        if self.own_stats:
            return rows_mm(x_ND, self.w_DO).div_(rms_denominator(x_ND, self.c))
        return rows_mm(x_ND, self.w_DO).mul_(rms_scale(x_ND, self.eps))


class FastNorm:
    """An :class:`RMSNorm` on its own: ``x (g sqrt(D)) / rms_denominator(x)`` for float32/float64
    (four calls), the module itself otherwise."""

    def __init__(self, norm: RMSNorm) -> None:
        D = norm.weight.shape[0]
        self.module, self.own_stats = norm, norm.weight.dtype in STAT_DTYPES
        self.weight = norm.weight * D**0.5
        self.c = torch.tensor((D * norm.eps) ** 0.5, dtype=norm.weight.dtype, device=norm.weight.device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.own_stats and x.dtype == self.weight.dtype:
            return torch.mul(x, self.weight).div_(rms_denominator(x, self.c))
        return self.module(x)


def rotated_rows(w_ND: torch.Tensor) -> torch.Tensor:
    """Rows of ``w`` whose outputs are RoPE's pair rotation of ``w``'s: ``(y0, y1) -> (-y1, y0)``."""
    pairs = w_ND.unflatten(0, (-1, 2))
    return torch.stack((-pairs[:, 1], pairs[:, 0]), dim=1).flatten(0, 1)


class FastLayer:
    """One :class:`TransformerLayer` for ``B`` rows, one query each, keys in a cache ``[B, H_kv, C, hd]``.

    Norms and the projections after them are :class:`NormedProjection` s. RoPE rotates
    ``y = x W^T`` by channel pairs, ``y cos + rot(y) sin``, and ``rot(y)`` is a projection with
    permuted, negated rows (:func:`rotated_rows`), so q, k, their rotations and v come out of one
    matmul.
    """

    def __init__(self, layer: TransformerLayer, rotate_in_matmul: bool | None = True) -> None:
        attn, mlp = layer.self_attn, layer.mlp
        self.heads, self.kv_heads, self.head_dim = attn.heads, attn.kv_heads, attn.head_dim
        H, Hk = self.heads, self.kv_heads
        w_qk = torch.cat([attn.q_proj.weight, attn.k_proj.weight], dim=0)
        # rotate_in_matmul=False: rot(y) by negating and swapping channel pairs after the matmul
        # (five more small ops, a matmul with 40% fewer weights to read: the better trade for a
        # stack whose weights do not stay in cache between its steps, a large global one);
        # None: rotate in the matmul only where the weights are small (TRANSPOSE_UP_TO)
        if rotate_in_matmul is None:
            rotate_in_matmul = (2 * w_qk.numel() + attn.v_proj.weight.numel()) <= TRANSPOSE_UP_TO
        self.rotate_in_matmul = rotate_in_matmul
        w_all = torch.cat([w_qk, rotated_rows(w_qk), attn.v_proj.weight] if rotate_in_matmul else [w_qk, attn.v_proj.weight], dim=0)
        self.qkv = NormedProjection(layer.input_layernorm, w_all)
        self.groups = (H + Hk, H + Hk, Hk) if rotate_in_matmul else (H + Hk, Hk)  # y's heads: qk, rot(qk), v
        self.w_o = mm_weight(attn.o_proj.weight)
        self.gate_up = NormedProjection(layer.post_attention_layernorm,
                                        torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight], dim=0))
        self.w_down = mm_weight(mlp.down_proj.weight)
        # The model rotates float32 activations in float32 (its cos/sin tables are float32) and any
        # other dtype in float32 too, casting back; the same here.
        self.float_rope = w_all.dtype != torch.float32

    def __call__(self, x_BD: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                 k_BHCD: torch.Tensor, v_BHCD: torch.Tensor, slot: int, used: int,
                 mask: torch.Tensor | None, row: int | None = None, start: int = 0) -> torch.Tensor:
        """``x_BD`` -> the layer's output ``[B, D]``. ``cos``/``sin``: the RoPE tables of the query's
        position ``[hd]``. The new key/value go to cache slot ``slot`` of every row (``row``: of
        that one cache row, B == 1); the query reads slots ``[start, used)`` where ``mask``
        ``[B, 1, 1, used - start]`` allows (None: all)."""
        B = x_BD.shape[0]
        q, k, v = self.project(x_BD, cos, sin)
        if row is not None:  # one cache row: views of it, no copies
            k_BHCD, v_BHCD = k_BHCD.narrow(0, row, 1), v_BHCD.narrow(0, row, 1)
        k_BHCD.select(2, slot).copy_(k)
        v_BHCD.select(2, slot).copy_(v)
        if start or used < k_BHCD.shape[2]:
            k_BHCD, v_BHCD = k_BHCD.narrow(2, start, used - start), v_BHCD.narrow(2, start, used - start)
        o = F.scaled_dot_product_attention(q.unsqueeze(2), k_BHCD, v_BHCD, attn_mask=mask,
                                           enable_gqa=self.heads != self.kv_heads)
        return self.finish(x_BD, o.view(B, self.heads * self.head_dim))

    def gathered(self, x_CD: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, k_BHPD: torch.Tensor,
                 v_BHPD: torch.Tensor, rows_C: torch.Tensor, write_CH: torch.Tensor, used: int,
                 mask: torch.Tensor) -> torch.Tensor:
        """``C`` queries of cache rows ``rows_C`` (one slot each) -> ``[C, D]``. ``cos``/``sin``
        ``[C, 1, hd]``; ``write_CH``: where each new key/value head goes in the flattened cache
        ``[B * H_kv * P, hd]`` (one ``index_copy_``, where advanced indexing costs several times
        more); the queries read their rows' slots ``[0, used)`` (narrowed, then gathered: a copy
        of the filled slots only) where ``mask`` ``[C, 1, 1, used]`` allows."""
        C, hd = x_CD.shape[0], self.head_dim
        q, k, v = self.project(x_CD, cos, sin)
        flat = write_CH.view(-1)
        k_BHPD.view(-1, hd).index_copy_(0, flat, k.reshape(-1, hd))
        v_BHPD.view(-1, hd).index_copy_(0, flat, v.reshape(-1, hd))
        k_read = k_BHPD.narrow(2, 0, used).index_select(0, rows_C)
        v_read = v_BHPD.narrow(2, 0, used).index_select(0, rows_C)
        o = F.scaled_dot_product_attention(q.unsqueeze(2), k_read, v_read, attn_mask=mask,
                                           enable_gqa=self.heads != self.kv_heads)
        return self.finish(x_CD, o.view(C, self.heads * hd))

    def queries(self, x_MD: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, k_BHCD: torch.Tensor,
                v_BHCD: torch.Tensor, row: int, slots_M: torch.Tensor, used: int, mask: torch.Tensor | None) -> torch.Tensor:
        """``M`` positions of one cache row at once -> ``[M, D]``: their keys/values go to slots
        ``slots_M`` of row ``row``, and the queries, as one sequence, read slots ``[0, used)``
        where ``mask`` ``[1, 1, M, used]`` allows (the row's cache is read once, not once per
        query). ``cos``/``sin``: ``[M, 1, hd]``."""
        M = x_MD.shape[0]
        H, Hk, hd = self.heads, self.kv_heads, self.head_dim
        q, k, v = self.project(x_MD, cos, sin)
        k_1HCD, v_1HCD = k_BHCD.narrow(0, row, 1), v_BHCD.narrow(0, row, 1)
        k_1HCD[0].index_copy_(1, slots_M, k.transpose(0, 1))
        v_1HCD[0].index_copy_(1, slots_M, v.transpose(0, 1))
        o = F.scaled_dot_product_attention(q.transpose(0, 1).unsqueeze(0), k_1HCD.narrow(2, 0, used),
                                           v_1HCD.narrow(2, 0, used), attn_mask=mask, enable_gqa=H != Hk)
        return self.finish(x_MD, o[0].transpose(0, 1).reshape(M, H * hd))

    def project(self, x_BD: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(RoPE-rotated q ``[B, H, hd]`` and k ``[B, H_kv, hd]``, v ``[B, H_kv, hd]``) of ``B`` queries."""
        B = x_BD.shape[0]
        y = self.qkv(x_BD).view(B, -1, self.head_dim)
        if self.rotate_in_matmul:
            a, b, v = y.split(self.groups, 1)
        else:  # rot(y): channel pairs (y0, y1) -> (-y1, y0), exactly what rotated_rows' outputs are
            a, v = y.split(self.groups, 1)
            pairs = a.unflatten(2, (-1, 2))
            b = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).view(a.shape)
        if self.float_rope:
            qk = (a.float() * cos + b.float() * sin).to(y.dtype)  # the model's own ops: no fused multiply-add
        else:
            qk = torch.addcmul(a * cos, b, sin)
        q, k = qk.split((self.heads, self.kv_heads), 1)
        return q, k, v

    def finish(self, x_BD: torch.Tensor, o_BE: torch.Tensor) -> torch.Tensor:
        """The output projection, residual and SwiGLU MLP after attention (``o_BE``: heads concatenated)."""
        h = residual_mm(x_BD, o_BE, self.w_o)
        gate, up = self.gate_up(h).chunk(2, 1)
        return residual_mm(h, F.silu(gate).mul_(up), self.w_down)


class FastCross:
    """One :class:`CrossAttention` whose keys/values (normed and projected) are computed when its
    slots change, not at every query."""

    def __init__(self, cross: CrossAttention) -> None:
        self.cross = cross
        self.heads, self.head_dim = cross.heads, cross.head_dim
        self.kv = NormedProjection(cross.k_norm, torch.cat([cross.k_proj.weight, cross.v_proj.weight], dim=0))
        self.q = NormedProjection(cross.q_norm, cross.q_proj.weight)
        self.w_o = mm_weight(cross.o_proj.weight)

    def key_rows(self, kv_BKD: torch.Tensor) -> torch.Tensor:
        """Keys and values ``[B, K, 2, H, hd]`` (contiguous) for slots ``kv_BKD``."""
        B, K, D = kv_BKD.shape
        return self.kv(kv_BKD.reshape(B * K, D)).view(B, K, 2, self.heads, self.head_dim)

    def keys(self, kv_BKD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(k, v)`` as ``[B, H, K, hd]`` for slots ``kv_BKD``."""
        kv = self.key_rows(kv_BKD)
        return kv[:, :, 0].transpose(1, 2), kv[:, :, 1].transpose(1, 2)

    def __call__(self, x_BD: torch.Tensor, k_BHKD: torch.Tensor, v_BHKD: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``x + o_proj(attn(q_norm(x)))`` for one query per row ``[B, D]``, or ``Q`` per row
        ``[B, Q, D]`` (the module's own residual included); ``mask`` ``[B, 1, 1 or Q, K]`` or None."""
        shape = x_BD.shape
        B, H, hd = shape[0], self.heads, self.head_dim
        if x_BD.dim() == 2:  # one query per row: [B, H, 1, hd] in and out, no transposes
            o = F.scaled_dot_product_attention(self.q(x_BD).view(B, H, 1, hd), k_BHKD, v_BHKD, attn_mask=mask)
            return residual_mm(x_BD, o.view(B, H * hd), self.w_o)
        x_ND = x_BD.reshape(-1, shape[-1])
        q = self.q(x_ND).view(B, -1, H, hd)
        o = F.scaled_dot_product_attention(q.transpose(1, 2), k_BHKD, v_BHKD, attn_mask=mask)
        return residual_mm(x_ND, o.transpose(1, 2).reshape(x_ND.shape[0], -1), self.w_o).view(shape)
