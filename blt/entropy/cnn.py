"""The CNN entropy model: a causal convolutional byte LM with a 2-byte context (the paper's CNN variant).

``embed -> causal conv (kernel 2 over tokens t-1, t) -> MLP -> 260 logits``. The previous token is
hidden when it is an EOS (the document before does not leak into the next), matching the
transformer's document blocks.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from blt.core.config import Config, PositiveInt
from blt.tokens import EOS_ID, VOCAB_SIZE

KERNEL = 2


class CNNEntropyConfig(Config, tag="cnn", tag_field="kind"):
    """Sizes of the CNN entropy model (the context is fixed at 2 tokens)."""

    kind: ClassVar[str] = "cnn"

    dim: PositiveInt = 64
    hidden: PositiveInt = 512
    mlp_layers: PositiveInt = 2


class CNNStreamState:
    """The last token (and its embedding visibility) of each row, to continue a stream."""

    def __init__(self, batch: int, device: torch.device) -> None:
        self.prev_token_B1 = torch.full((batch, 1), EOS_ID, dtype=torch.long, device=device)  # like a row start

    def snapshot(self) -> torch.Tensor:
        return self.prev_token_B1  # replaced at each step, never changed in place

    def restore(self, mark: torch.Tensor) -> None:
        self.prev_token_B1 = mark


class CNNEntropyModel(nn.Module):
    """``forward(tokens[B, T], state=None) -> logits[B, T, 260]`` using tokens ``t-1`` and ``t`` only."""

    kind = "cnn"

    def __init__(self, config: CNNEntropyConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(VOCAB_SIZE, config.dim)
        self.conv = nn.Conv1d(config.dim, config.hidden, kernel_size=KERNEL)
        self.mlp = nn.ModuleList(nn.Linear(config.hidden, config.hidden) for _ in range(config.mlp_layers - 1))
        self.lm_head = nn.Linear(config.hidden, VOCAB_SIZE)

    @property
    def context(self) -> int:
        """Tokens of left context a prediction may use (itself included)."""
        return KERNEL

    def fast_stream(self, batch: int) -> CNNFastStream:
        """One token per row per call, for patching during generation (tables of each token's
        part of the convolution, computed from the current weights)."""
        return CNNFastStream(self, batch)

    def new_state(self, batch: int) -> CNNStreamState:
        return CNNStreamState(batch, self.embed_tokens.weight.device)

    def forward(self, tokens_BT: torch.Tensor, state: CNNStreamState | None = None) -> torch.Tensor:
        B, T = tokens_BT.shape
        first_prev_B1 = state.prev_token_B1 if state is not None else torch.full((B, 1), EOS_ID, dtype=torch.long, device=tokens_BT.device)
        prev_BT = torch.cat([first_prev_B1, tokens_BT[:, :-1]], dim=1)
        cur_BTD = self.embed_tokens(tokens_BT)
        # A previous token that is an EOS (or the row start) is outside the block: contribute zero.
        prev_BTD = self.embed_tokens(prev_BT) * (prev_BT != EOS_ID).unsqueeze(-1)
        pair_BDTK = torch.stack([prev_BTD, cur_BTD], dim=-1).transpose(1, 2)  # (B, D, T, 2)
        h_BTH = torch.einsum("bdtk,hdk->bth", pair_BDTK, self.conv.weight) + self.conv.bias
        h_BTH = F.gelu(h_BTH)
        for linear in self.mlp:
            h_BTH = h_BTH + F.gelu(linear(h_BTH))
        if state is not None and T:
            state.prev_token_B1 = tokens_BT[:, -1:]
        return self.lm_head(h_BTH)


class CNNFastStream:
    """The CNN one token at a time: the kernel-2 convolution is ``W0 e(t-1) + W1 e(t) + b``, so
    each token's two contributions are looked up from ``[260, hidden]`` tables (built once per
    stream; the EOS row of the previous-token table is zero, as the model hides an EOS before t),
    then the MLP and head run on ``[B, hidden]``. ``step(tokens_B) -> logits [B, 260]``."""

    def __init__(self, model: CNNEntropyModel, batch: int) -> None:
        emb, w = model.embed_tokens.weight, model.conv.weight  # [260, D], [H, D, 2]
        self.model = model
        self.prev_VH = emb @ w[:, :, 0].T
        self.prev_VH[EOS_ID] = 0
        self.cur_VH = emb @ w[:, :, 1].T + model.conv.bias
        self.prev_B = torch.full((batch,), EOS_ID, dtype=torch.long, device=emb.device)  # like a row start

    def step(self, tokens_B: torch.Tensor) -> torch.Tensor:
        h_BH = F.gelu(F.embedding(self.prev_B, self.prev_VH) + F.embedding(tokens_B, self.cur_VH))
        for linear in self.model.mlp:
            h_BH = h_BH + F.gelu(linear(h_BH))
        self.prev_B = tokens_B
        return self.model.lm_head(h_BH)

    def snapshot(self) -> torch.Tensor:
        return self.prev_B  # replaced at each step, never changed in place

    def restore(self, mark: torch.Tensor) -> None:
        self.prev_B = mark
