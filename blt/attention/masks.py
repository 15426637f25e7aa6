"""Mask descriptions: what may attend to what, described once per batch, realised per backend.

Every BLT mask has the same shape of rule. Each query and each key carries an integer
*position* in a shared coordinate (a byte index or a patch index) and, optionally, a document id:

    allowed(q, kv) = kv_pos <= q_pos  and  q_pos - kv_pos < window  and  q_doc == kv_doc

| kind                | queries        | keys           | q_pos / kv_pos                     | window   | docs |
|---------------------|----------------|----------------|------------------------------------|----------|------|
| local_block_causal  | bytes t        | bytes s        | t / s                              | W bytes  | yes  |
| patch_causal        | patches p      | patches p'     | p / p'                             | none     | no   |
| patch_block_causal  | patches p      | patches p'     | p / p'                             | none     | yes  |
| byte_to_patch       | slots p*k+j    | bytes t        | p / patch_ids[t]                   | W patches (1 = own patch) | no |
| patch_to_byte       | bytes t        | slots q*k+j    | decoder_patch_ids[t] / q           | W patches (1 = own patch) | no |

A backend turns a description into its own form once per batch (``prepare``): a dense boolean
``[B, Q, K]`` mask, a FlexAttention BlockMask, or varlen offsets. Nothing here loops over positions.
"""

from __future__ import annotations

import attrs
import torch

from blt.model.layout import PatchLayout

LOCAL_BLOCK_CAUSAL = "local_block_causal"
PATCH_CAUSAL = "patch_causal"
PATCH_BLOCK_CAUSAL = "patch_block_causal"
BYTE_TO_PATCH = "byte_to_patch"
PATCH_TO_BYTE = "patch_to_byte"
MASK_KINDS = frozenset({LOCAL_BLOCK_CAUSAL, PATCH_CAUSAL, PATCH_BLOCK_CAUSAL, BYTE_TO_PATCH, PATCH_TO_BYTE})


@attrs.frozen(eq=False)
class MaskDescription:
    """``allowed[b, q, kv] = kv_pos <= q_pos & q_pos - kv_pos < window & q_doc == kv_doc``.

    ``q_pos_BQ`` / ``kv_pos_BK``: LongTensors; ``q_doc_BQ`` / ``kv_doc_BK``: both None (no document
    blocking) or both LongTensors; ``window``: None (unlimited) or >= 1.
    """

    kind: str = attrs.field(validator=attrs.validators.in_(MASK_KINDS))
    q_pos_BQ: torch.Tensor
    kv_pos_BK: torch.Tensor
    q_doc_BQ: torch.Tensor | None = None
    kv_doc_BK: torch.Tensor | None = None
    window: int | None = attrs.field(default=None)

    @window.validator
    def _check_window(self, attribute: attrs.Attribute, value: int | None) -> None:
        if value is not None and value < 1:
            raise ValueError(f"mask window must be >= 1 or None, got {value}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(B, Q, K)``."""
        return (self.q_pos_BQ.shape[0], self.q_pos_BQ.shape[1], self.kv_pos_BK.shape[1])

    def allowed(self, b: torch.Tensor, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        """The rule on broadcastable index tensors (batch, query, key); also a FlexAttention mask_mod."""
        q_pos, kv_pos = self.q_pos_BQ[b, q], self.kv_pos_BK[b, kv]
        ok = kv_pos <= q_pos
        if self.window is not None:
            ok = ok & (q_pos - kv_pos < self.window)
        if self.q_doc_BQ is not None and self.kv_doc_BK is not None:
            ok = ok & (self.q_doc_BQ[b, q] == self.kv_doc_BK[b, kv])
        return ok

    def dense(self) -> torch.Tensor:
        """``BoolTensor[B, Q, K]``, True where attention is allowed."""
        B, Q, K = self.shape
        device = self.q_pos_BQ.device
        b = torch.arange(B, device=device)[:, None, None]
        q = torch.arange(Q, device=device)[None, :, None]
        kv = torch.arange(K, device=device)[None, None, :]
        return self.allowed(b, q, kv)


def _slots(ids_BP: torch.Tensor, k: int) -> torch.Tensor:
    """Repeat each patch entry k times: slot ``p*k + j`` belongs to patch p (patch-major order)."""
    return ids_BP.repeat_interleave(k, dim=1)


def local_block_causal(layout: PatchLayout, window: int | None, block_documents: bool = True) -> MaskDescription:
    """Bytes: causal, at most ``window`` bytes back (self included) and, with ``block_documents``,
    within the same EOS-delimited document."""
    pos_BN = torch.arange(layout.num_bytes, device=layout.patch_ids_BN.device).expand(layout.batch, -1)
    doc_BN = layout.byte_doc_BN if block_documents else None
    return MaskDescription(LOCAL_BLOCK_CAUSAL, pos_BN, pos_BN, doc_BN, doc_BN, window)


def patch_causal(layout: PatchLayout, block_documents: bool) -> MaskDescription:
    """Patches: causal, optionally blocked at EOS-marked patches (``patch_block_causal``)."""
    pos_BP = torch.arange(layout.num_patches, device=layout.patch_ids_BN.device).expand(layout.batch, -1)
    if block_documents:
        return MaskDescription(PATCH_BLOCK_CAUSAL, pos_BP, pos_BP, layout.patch_doc_BP, layout.patch_doc_BP)
    return MaskDescription(PATCH_CAUSAL, pos_BP, pos_BP)


def byte_to_patch(layout: PatchLayout, k: int, window: int = 1) -> MaskDescription:
    """Encoder cross-attention: each of patch p's k slots reads bytes t with ``p - window < patch_ids[t] <= p``."""
    pos_BP = torch.arange(layout.num_patches, device=layout.patch_ids_BN.device).expand(layout.batch, -1)
    return MaskDescription(BYTE_TO_PATCH, _slots(pos_BP, k), layout.patch_ids_BN, window=window)


def patch_to_byte(layout: PatchLayout, k: int, window: int = 1) -> MaskDescription:
    """Decoder cross-attention: byte t reads the k slots of patches q with ``d[t] - window < q <= d[t]``."""
    pos_BP = torch.arange(layout.num_patches, device=layout.patch_ids_BN.device).expand(layout.batch, -1)
    return MaskDescription(PATCH_TO_BYTE, layout.decoder_patch_ids_BN, _slots(pos_BP, k), window=window)
