"""The Byte Latent Transformer: local encoder -> global transformer -> local decoder -> lm_head.

Encoder and decoder are injected plugin modules; every attention call goes through one backend.
Masks are described once per batch at the top of ``forward`` and bound to the backend there.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
from torch import nn

from blt.core.errors import UnavailableError
from blt.attention.backend import AttentionBackend, bind
from blt.model.blocks import Attend, trunc_normal_
from blt.model.global_transformer import GlobalTransformer
from blt.model.layout import PatchLayout
from blt.tokens import VOCAB_SIZE
from blt.train.objective import cross_entropy_sum, target_byte_count


@attrs.frozen(eq=False)
class BatchAttention:
    """One ``attend(q, k, v)`` per mask each component asked for, bound for this batch."""

    encoder: dict[str, Attend]
    global_transformer: dict[str, Attend]
    decoder: dict[str, Attend]


class ByteLatentTransformer(nn.Module):
    """``model(tokens [B, N], patch_lengths [B, P]) -> float32 logits [B, N, 260]``;
    ``model(tokens, patch_lengths, targets [B, N]) -> (summed cross-entropy, target bytes)``.

    ``patch_lengths`` are as returned by ``patch(..., include_next_token=True)``: each row sums to
    N + 1 and starts with a patch of length 1. Position t predicts byte t + 1 using bytes <= t.
    """

    def __init__(self, encoder: nn.Module, global_transformer: GlobalTransformer, decoder: nn.Module,
                 attention: AttentionBackend, d_local: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.global_transformer = global_transformer
        self.decoder = decoder
        self.lm_head = nn.Linear(d_local, VOCAB_SIZE, bias=False)
        trunc_normal_(self.lm_head.weight, d_local**-0.5)
        self.attention = attention  # not a module: holds no parameters

    def bind_masks(self, layout: PatchLayout) -> BatchAttention:
        """Describe every mask of this batch and prepare it for the backend (once per batch)."""
        def bound(component: nn.Module) -> dict[str, Attend]:
            return {name: bind(self.attention, mask) for name, mask in component.describe_masks(layout).items()}

        return BatchAttention(bound(self.encoder), bound(self.global_transformer), bound(self.decoder))

    def check_trainable(self, device: torch.device) -> None:
        """Refuse up front when a graph would be built but the backend has no backward here."""
        if torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters()):
            reason = self.attention.can_train(device)
            if reason is not None:
                raise UnavailableError(
                    f"attention backend {self.attention.name!r} cannot train on {device}: {reason} "
                    "(run inference under torch.no_grad(), or choose another backend)"
                )

    def forward(self, tokens_BN: torch.Tensor, patch_lengths_BP: torch.Tensor,
                targets_BN: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, int]:
        logits_BNV = self.logits(tokens_BN, patch_lengths_BP)
        if targets_BN is None:
            return logits_BNV
        return cross_entropy_sum(logits_BNV, targets_BN), target_byte_count(targets_BN)

    def target_nats(self, tokens_BN: torch.Tensor, patch_lengths_BP: torch.Tensor,
                    targets_BN: torch.Tensor) -> torch.Tensor:
        """Nats of each target, float32 ``[B, N]`` (0 where the target is pad): the terms whose sum
        is ``forward``'s ``ce_sum``, for per-byte scoring (blt.evaluation)."""
        from blt.tokens import PAD_ID

        logits_BNV = self.logits(tokens_BN, patch_lengths_BP)
        B, N = targets_BN.shape
        return torch.nn.functional.cross_entropy(logits_BNV.float().flatten(0, 1), targets_BN.flatten(),
                                                 ignore_index=PAD_ID, reduction="none").view(B, N)

    def logits(self, tokens_BN: torch.Tensor, patch_lengths_BP: torch.Tensor) -> torch.Tensor:
        layout = PatchLayout.from_lengths(tokens_BN, patch_lengths_BP)
        self.check_trainable(tokens_BN.device)
        attends = self.bind_masks(layout)
        bytes_BND, patches_BPE = self.encoder(tokens_BN.long(), layout, attends.encoder)
        patches_BPG = self.global_transformer(patches_BPE, attends.global_transformer)
        h_BND = self.decoder(bytes_BND, patches_BPG, layout, attends.decoder)
        return self.lm_head(h_BND).float()  # (B, N, 260)

    def flops(self, n_bytes: float, avg_patch_size: float, attention: str = "causal") -> dict[str, float]:
        """Forward FLOPs of one row of ``n_bytes`` bytes by component; ``1 + n_bytes / a`` patches
        (the row's first byte is a patch of its own). Each component reports its own part."""
        from blt.flops import VOCAB

        N = float(n_bytes)
        P = 1 + N / avg_patch_size
        out = dict(self.encoder.flops(N, P, attention))
        for name, value in self.global_transformer.flops(P, attention).items():
            out[name] = out.get(name, 0.0) + value
        for name, value in self.decoder.flops(N, P, attention).items():
            out[name] = out.get(name, 0.0) + value
        out["head"] = 2 * N * self.lm_head.in_features * VOCAB
        return out

    def incremental_step(self, patcher: Any, batch: int, total: int) -> Any:
        """Cached generation: one byte per ``step(tokens_B) -> logits [B, 260]`` (see blt.generate.cached)."""
        from blt.generate.cached import CachedGenerator

        return CachedGenerator(self, patcher, batch, total)

    def param_counts(self) -> dict[str, int]:
        """Parameters by component: hash_embeddings, encoder (rest), global, decoder, head, total."""
        hash_module = getattr(self.encoder, "hash_embeddings", None)
        hash_count = sum(p.numel() for p in hash_module.parameters()) if hash_module is not None else 0
        counts = {
            "hash_embeddings": hash_count,
            "encoder": sum(p.numel() for p in self.encoder.parameters()) - hash_count,
            "global": sum(p.numel() for p in self.global_transformer.parameters()),
            "decoder": sum(p.numel() for p in self.decoder.parameters()),
            "head": self.lm_head.weight.numel(),
        }
        counts["total"] = sum(counts.values())
        return counts
