"""The transformer entropy model: a small causal byte LM with a sliding window and document blocks.

Layout follows the Hugging Face BLT port's patcher (``embed_tokens [260, d]``, ``layers.{i}`` built
from :class:`blt.model.blocks.TransformerLayer`, ``norm``, ``lm_head [260, d]``; interleaved RoPE,
theta 10000), so a converter can load those weights one to one.

Attention rule (the reference entropy model's): query i attends key j iff ``i - window < j <= i`` and both lie in
the same document block. EOS belongs to the block it closes, so the token after an EOS starts a
fresh context. Rows of a batch never see each other. The boolean mask is built once per forward.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import torch
import torch.nn.functional as F
from msgspec import Meta
from torch import nn

from blt.core.config import Config, PositiveInt
from blt.model.blocks import RMSNorm, TransformerLayer, init_layer, rope_angles, trunc_normal_
from blt.tokens import EOS_ID, VOCAB_SIZE


class TransformerEntropyConfig(Config, tag="transformer", tag_field="kind"):
    """Sizes of the transformer entropy model. Defaults: the tiny CPU model shipped with blt."""

    kind: ClassVar[str] = "transformer"

    dim: PositiveInt = 128
    layers: PositiveInt = 2
    heads: PositiveInt = 4
    kv_heads: PositiveInt | None = None
    ffn_dim: PositiveInt = 384
    window: PositiveInt = 512
    rope_theta: Annotated[float, Meta(gt=0)] = 10000.0
    norm_eps: Annotated[float, Meta(gt=0)] = 1e-5
    # Attention stops at EOS (document blocks), as in the reference; Hugging Face's port attends
    # across EOS, so converted models set this to False.
    block_documents: bool = True

    PRESETS: ClassVar[dict[str, dict]] = {
        "tiny": {},
        # The entropy model of Pagnoni et al., 2024: ~99M non-embedding parameters, head dim 64.
        "paper": {"dim": 768, "layers": 14, "heads": 12, "ffn_dim": 2048, "window": 512},
    }

    @classmethod
    def preset(cls, name: str) -> TransformerEntropyConfig:
        """``"tiny"`` (the shipped CPU default) or ``"paper"`` (768 wide, 14 layers, 12 heads, ffn 2048, window 512)."""
        if name not in cls.PRESETS:
            from blt.core.errors import ConfigError

            raise ConfigError(f"unknown transformer entropy preset {name!r}; choose one of {', '.join(cls.PRESETS)}")
        return cls(**cls.PRESETS[name])

    def __post_init__(self) -> None:
        if self.dim % self.heads or (self.dim // self.heads) % 2:
            raise ValueError(f"dim ({self.dim}) must split into {self.heads} heads of even size")
        if self.kv_heads is not None and self.heads % self.kv_heads:
            raise ValueError(f"heads ({self.heads}) must be a multiple of kv_heads ({self.kv_heads})")


class LayerKVCache:
    """Keys/values of one layer for the positions kept in the window (``[B, H_kv, S, hd]``)."""

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def update(self, k_BHTD: torch.Tensor, v_BHTD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k is not None:
            k_BHTD, v_BHTD = torch.cat([self.k, k_BHTD], dim=2), torch.cat([self.v, v_BHTD], dim=2)
        self.k, self.v = k_BHTD, v_BHTD
        return k_BHTD, v_BHTD

    def keep_last(self, n: int) -> None:
        if self.k is not None:
            self.k, self.v = self.k[:, :, -n:] if n else self.k[:, :, :0], self.v[:, :, -n:] if n else self.v[:, :, :0]


class TransformerStreamState:
    """What a stream needs to continue: per-layer KV caches, the kept keys' positions and blocks.

    Only the last ``window - 1`` keys are kept, so memory is bounded for any stream length.
    """

    def __init__(self, batch: int, layers: int, window: int, device: torch.device) -> None:
        self.window = window
        self.layers = [LayerKVCache() for _ in range(layers)]
        self.key_pos_BS = torch.zeros(batch, 0, dtype=torch.long, device=device)
        self.key_block_BS = torch.zeros(batch, 0, dtype=torch.long, device=device)
        self.next_pos = 0
        self.eos_seen_B = torch.zeros(batch, 1, dtype=torch.long, device=device)

    def snapshot(self) -> tuple:
        """The stream as it is now, for :meth:`restore`: a step replaces the caches' tensors rather
        than writing into them, so references suffice (key positions are copied: generation marks
        a finished document's keys in place)."""
        return ([(c.k, c.v) for c in self.layers], self.key_pos_BS.clone(), self.key_block_BS, self.next_pos,
                self.eos_seen_B)

    def restore(self, mark: tuple) -> None:
        layers, key_pos, self.key_block_BS, self.next_pos, self.eos_seen_B = mark
        for cache, (k, v) in zip(self.layers, layers):
            cache.k, cache.v = k, v
        self.key_pos_BS = key_pos.clone()


class TransformerEntropyModel(nn.Module):
    """``forward(tokens[B, T], state=None) -> logits[B, T, 260]`` (logits at t predict token t + 1)."""

    kind = "transformer"

    def __init__(self, config: TransformerEntropyConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(VOCAB_SIZE, config.dim)
        self.layers = nn.ModuleList(
            TransformerLayer(config.dim, config.heads, config.kv_heads, config.ffn_dim, config.norm_eps) for _ in range(config.layers)
        )
        self.norm = RMSNorm(config.dim, config.norm_eps)
        self.lm_head = nn.Linear(config.dim, VOCAB_SIZE, bias=False)
        self.reset_parameters()

    @property
    def context(self) -> int:
        """Tokens of left context a prediction may depend on (itself included): each layer looks
        ``window - 1`` back, so the receptive field of the stack is ``layers * (window - 1) + 1``.
        Recomputing from scratch needs this much left context; streaming with a state needs only
        the ``window - 1`` cached keys per layer."""
        return self.config.layers * (self.config.window - 1) + 1

    def reset_parameters(self) -> None:
        trunc_normal_(self.embed_tokens.weight, self.config.dim**-0.5)
        for depth, layer in enumerate(self.layers):
            init_layer(layer, factor=(2 * (depth + 1)) ** 0.5)
        trunc_normal_(self.lm_head.weight, self.config.dim**-0.5)

    def fast_stream(self, batch: int):
        """One token per row per call, for patching during generation (see :mod:`blt.entropy.fast_stream`)."""
        from blt.entropy.fast_stream import FastEntropyStream

        return FastEntropyStream(self, batch)

    def new_state(self, batch: int) -> TransformerStreamState:
        return TransformerStreamState(batch, len(self.layers), self.config.window, self.embed_tokens.weight.device)

    def forward(self, tokens_BT: torch.Tensor, state: TransformerStreamState | None = None) -> torch.Tensor:
        """Logits ``[B, T, 260]``. With ``state``, continue a stream (KV cache within the window) and update it."""
        B, T = tokens_BT.shape
        start = state.next_pos if state is not None else 0
        q_pos_BT = (start + torch.arange(T, device=tokens_BT.device)).expand(B, T)
        is_eos = (tokens_BT == EOS_ID).long()
        # Block id = EOS tokens strictly before t (EOS belongs to the block it closes).
        q_block_BT = torch.cumsum(is_eos, dim=1) - is_eos
        if state is not None:
            q_block_BT = q_block_BT + state.eos_seen_B
            k_pos_BS = torch.cat([state.key_pos_BS, q_pos_BT], dim=1)
            k_block_BS = torch.cat([state.key_block_BS, q_block_BT], dim=1)
        else:
            k_pos_BS, k_block_BS = q_pos_BT, q_block_BT
        mask_B1TS = self.attention_mask(q_pos_BT, q_block_BT, k_pos_BS, k_block_BS)

        def attend(q_BHTD: torch.Tensor, k_BHSD: torch.Tensor, v_BHSD: torch.Tensor) -> torch.Tensor:
            return F.scaled_dot_product_attention(q_BHTD, k_BHSD, v_BHSD, attn_mask=mask_B1TS)

        head_dim = self.config.dim // self.config.heads
        cos, sin = rope_angles(q_pos_BT[0], head_dim, self.config.rope_theta)  # (T, hd)
        x_BTD = self.embed_tokens(tokens_BT)
        for i, layer in enumerate(self.layers):
            x_BTD = layer(x_BTD, (cos, sin), attend, state.layers[i] if state is not None else None)
        logits_BTV = self.lm_head(self.norm(x_BTD))
        if state is not None:
            keep = min(self.config.window - 1, k_pos_BS.shape[1])
            for cache in state.layers:
                cache.keep_last(keep)
            state.key_pos_BS = k_pos_BS[:, k_pos_BS.shape[1] - keep :]
            state.key_block_BS = k_block_BS[:, k_block_BS.shape[1] - keep :]
            state.next_pos = start + T
            state.eos_seen_B = state.eos_seen_B + is_eos.sum(1, keepdim=True)
        return logits_BTV

    def attention_mask(
        self, q_pos_BT: torch.Tensor, q_block_BT: torch.Tensor, k_pos_BS: torch.Tensor, k_block_BS: torch.Tensor
    ) -> torch.Tensor:
        """``[B, 1, T, S]`` bool, True where the query may attend the key: causal, within the window,
        and (with ``block_documents``) in the same block."""
        dist_BTS = q_pos_BT[:, :, None] - k_pos_BS[:, None, :]
        allowed_BTS = (dist_BTS >= 0) & (dist_BTS < self.config.window)
        if self.config.block_documents:
            allowed_BTS = allowed_BTS & (q_block_BT[:, :, None] == k_block_BS[:, None, :])
        return allowed_BTS.unsqueeze(1)
