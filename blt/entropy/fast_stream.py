"""The transformer entropy model one token at a time, for patching while generating.

:class:`TransformerEntropyModel.forward` with a stream state computes the same thing, but as a
general module call: a ``torch.cat`` of every layer's cache, a fresh mask and RoPE table per token,
module dispatch per layer. Cached generation asks for one token per row per step, where that
overhead is most of the cost, so this stream runs the model's layers through the single-query
path of cached generation (:class:`blt.generate.local_stack.LocalStack`: a ring of the last
``window`` positions, the model's RoPE, one boolean mask per step, the layer maths of
:class:`blt.generate.fast_layers.FastLayer`). The attention rule is the model's: query t sees keys
``t - window < j <= t`` of its own document (documents are patched alone, so a document never
sees the previous one's keys, whatever ``block_documents`` says for training on packed rows).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from blt.tokens import EOS_ID


class FastEntropyStream:
    """``step(tokens_B) -> logits [B, 260]`` for the next position of each of ``batch`` rows."""

    def __init__(self, model: torch.nn.Module, batch: int) -> None:
        from blt.generate.fast_layers import FastNorm, mm_weight
        from blt.generate.local_stack import LocalStack

        cfg, like = model.config, model.embed_tokens.weight
        self.model = model
        self.stack = LocalStack(model.layers, cfg.window, cfg.rope_theta, batch, cfg.window, None, like,
                                block_documents=True)
        self.final_norm = FastNorm(model.norm)
        self.lm_head_DV = mm_weight(model.lm_head.weight)
        self.t = 0
        self.doc = [0] * batch  # EOS tokens strictly before the current position, per row
        self.doc_B = torch.zeros(batch, dtype=torch.long, device=like.device)

    def step(self, tokens_B: torch.Tensor) -> torch.Tensor:
        model = self.model
        h_BD = F.embedding(tokens_B, model.embed_tokens.weight)
        self.stack.begin(self.t, self.doc_B)
        for i in range(len(model.layers)):
            h_BD = self.stack.layer(i, h_BD)
        logits_BV = torch.mm(self.final_norm(h_BD), self.lm_head_DV)
        self.t += 1
        eos = [token == EOS_ID for token in tokens_B.tolist()]
        if any(eos):
            self.doc = [n + e for n, e in zip(self.doc, eos)]
            self.doc_B = torch.tensor(self.doc, dtype=torch.long, device=self.doc_B.device)
        return logits_BV

    def snapshot(self) -> tuple:
        return self.stack.snapshot(), self.t, self.doc, self.doc_B

    def restore(self, mark: tuple) -> None:
        stack, self.t, self.doc, self.doc_B = mark
        self.stack.restore(stack)

    def commit(self) -> None:
        self.stack.commit()
