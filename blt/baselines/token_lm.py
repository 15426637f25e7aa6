"""Token-level transformer baselines: the global trunk shape run on BPE tokens or on bytes.

With ``tokenizer=None`` every byte is a token (the byte-level transformer: every byte a step of
the big model, vocabulary 260). With the ``bpe`` patcher's tokenizer it is the BPE-token
transformer, described below; both are scored in bits per byte.

It consumes the same rows as BLT: ``tokens[B, N]`` bytes and ``patch_lengths[B, P]`` from the
``bpe`` patcher (rows of ``N + 1`` positions, first patch 1). Each patch becomes one token id:
a special id (pad 0, BOS 1, EOS 2) stays itself, and a run of bytes maps to its BPE vocabulary
entry (``id + 4``), or, for a fragment cut at a row boundary that is not a vocabulary entry, to the
BPE tokens of that fragment. Token ``i`` predicts token ``i + 1``; the targets cover row positions
``1..N`` exactly, so bits per byte use the same target bytes as the byte-level models:
``BPB = sum CE(target tokens) / ln 2 / bytes covered (pad excluded)``.

Shapes: ``forward(tokens_BN, patch_lengths_BP, targets_BN) -> (ce_sum 0-dim, n_bytes int)`` (the model
family's contract); without targets the byte-level form returns byte logits ``[B, N, 260]``.
Attention is causal within EOS-delimited documents (the global trunk's ``patch_block_causal``
mask), computed by the experiment's attention backend, as in BLT.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from blt.core.errors import InputError
from blt.attention.backend import bind
from blt.model.blocks import RMSNorm, trunc_normal_
from blt.model.local import check_heads, init_layers, make_layers, rope_for
from blt.attention.masks import PATCH_BLOCK_CAUSAL, MaskDescription
from blt.tokens import BPE_ID, EOS_ID, OFFSET, PAD_ID, VOCAB_SIZE


def check_token_lm_attention(experiment: Any, registry: Any, *, training: bool, device: Any) -> None:
    """The trunk's one mask (causal within documents) must be served by the chosen backend."""
    from blt.model.build import check_attention

    check_attention(experiment, registry, training=training, device=torch.device(device or "cpu"),
                    needs={PATCH_BLOCK_CAUSAL: "token transformer"})


class TokenLM(nn.Module):
    def __init__(self, config: Any, tokenizer: Any | None, attention: Any) -> None:
        super().__init__()
        self.attention = attention  # an attention backend (blt.attention.backend), as BLT's trunk uses
        from blt.plugins.patchers.bpe import BYTE_TO_CHAR

        check_heads("$.model.global", config.d_global, config.global_heads, config.global_kv_heads)
        self.tokenizer = tokenizer  # None: every byte is a token (the byte-level baseline)
        self._byte_char = BYTE_TO_CHAR
        self.vocab = VOCAB_SIZE if tokenizer is None else tokenizer.get_vocab_size() + OFFSET
        self.rope_theta = config.rope_theta
        self.embed = nn.Embedding(self.vocab, config.d_global)
        self.layers = make_layers(config.global_layers, config.d_global, config.global_heads, config.global_kv_heads,
                                  config.global_ffn, config.norm_eps)
        self.norm = RMSNorm(config.d_global, config.norm_eps)
        self.head = nn.Linear(config.d_global, self.vocab, bias=False)
        self._cache: dict[bytes, list[int]] = {}
        trunc_normal_(self.embed.weight, config.d_global**-0.5)
        trunc_normal_(self.head.weight, config.d_global**-0.5)
        init_layers(self.layers, config.init_std_factor)

    # --- patches -> token ids (host side) ---
    def _bpe_ids(self, raw: bytes) -> list[int]:
        ids = self._cache.get(raw)
        if ids is None:
            text = "".join(self._byte_char[b] for b in raw)
            whole = self.tokenizer.token_to_id(text)
            ids = [whole + OFFSET] if whole is not None else [t.id + OFFSET for t in self.tokenizer.model.tokenize(text)]
            if len(self._cache) < 200_000:
                self._cache[raw] = ids
        return ids

    def token_ids(self, row_BN1: torch.Tensor, patch_lengths_BP: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Row positions ``[B, N + 1]`` (inputs plus the last target) and lengths summing to ``N + 1``
        -> ``(ids[B, T], n_bytes[B, T])``: one token per patch (more for cut fragments), 0-padded.

        Rows of the bpe patcher's delimited stream: a BPE delimiter (id 3, the last token of each
        patch) is a boundary, not a token, and covers no byte. Only a delimiter at row position 0
        stays, as a token of no bytes: the first token is context, never a target, so the tokens
        after it are targets exactly when their row positions are."""
        rows_ids, rows_bytes = [], []
        for row, lengths in zip(row_BN1.tolist(), patch_lengths_BP.tolist()):
            ids, nbytes, pos = [], [], 0
            for length in lengths:
                if length == 0:
                    break
                first = pos == 0
                piece, pos = row[pos : pos + length], pos + length
                start = 0
                for i in range(len(piece) + 1):  # split the patch into specials and byte runs
                    if i == len(piece) or piece[i] < OFFSET:
                        if i > start:
                            for tid in self._bpe_ids(bytes(t - OFFSET for t in piece[start:i])):
                                ids.append(tid)
                                nbytes.append(0)
                            nbytes[-1] = i - start  # credit the run's bytes to its last token
                        if i < len(piece) and (piece[i] != BPE_ID or (first and i == 0)):
                            ids.append(piece[i])
                            nbytes.append(0 if piece[i] in (PAD_ID, BPE_ID) else 1)
                        start = i + 1
            rows_ids.append(ids)
            rows_bytes.append(nbytes)
        width = max(len(r) for r in rows_ids)
        ids_BT = torch.zeros(len(rows_ids), width, dtype=torch.long)
        bytes_BT = torch.zeros(len(rows_ids), width, dtype=torch.long)
        for b, (ids, nb) in enumerate(zip(rows_ids, rows_bytes)):
            ids_BT[b, : len(ids)] = torch.tensor(ids)
            bytes_BT[b, : len(nb)] = torch.tensor(nb)
        return ids_BT.to(row_BN1.device), bytes_BT.to(row_BN1.device)

    def flops(self, n_bytes: float, avg_patch_size: float, attention: str = "causal") -> dict[str, float]:
        """Forward FLOPs of one row: the trunk over ``T`` tokens (``N / a`` BPE tokens of ``a`` bytes,
        ``N`` for bytes) and the output head ``2 T D V``."""
        from blt.flops import layers_flops, linear_flops

        T = float(n_bytes) if self.tokenizer is None else float(n_bytes) / avg_patch_size
        return {"global": layers_flops(self.layers, T, None, attention), "head": linear_flops(T, self.head)}

    def forward(self, tokens_BN: torch.Tensor, patch_lengths_BP: torch.Tensor,
                targets_BN: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, int]:
        if targets_BN is None:
            if self.tokenizer is not None:
                raise InputError("the bpe_token transformer scores rows of BPE tokens, it has no byte logits: call "
                                 "model(tokens, patch_lengths, targets) for (summed cross-entropy, target bytes)")
            return self.logits(tokens_BN).float()
        row_BN1 = torch.cat([tokens_BN, targets_BN[:, -1:]], dim=1)  # the last target is the row's last position
        if self.tokenizer is None:
            ids_BT, bytes_BT = row_BN1, ((row_BN1 != PAD_ID) & (row_BN1 != BPE_ID)).long()  # as target_byte_count
        else:
            ids_BT, bytes_BT = self.token_ids(row_BN1, patch_lengths_BP)
        logits_BTV = self.logits(ids_BT[:, :-1])
        ce = F.cross_entropy(logits_BTV.float().flatten(0, 1), ids_BT[:, 1:].flatten(), ignore_index=PAD_ID, reduction="sum")
        return ce, int(bytes_BT[:, 1:].sum())

    def target_nats(self, tokens_BN: torch.Tensor, patch_lengths_BP: torch.Tensor,
                    targets_BN: torch.Tensor) -> torch.Tensor:
        """Nats per target position, float32 ``[B, N]``, summing to ``forward``'s ``ce_sum``.

        Bytes: one term per target. BPE tokens: a token's loss is credited to the row position of
        its last byte (a special token's to its own position); a fragment token cut at a row edge,
        which covers no byte of its own, to the first byte of its run. Positions no token ends at
        (inner bytes, delimiters, pad) get 0."""
        return self._target_scores(tokens_BN, patch_lengths_BP, targets_BN)[0]

    def target_greedy(self, tokens_BN: torch.Tensor, patch_lengths_BP: torch.Tensor,
                      targets_BN: torch.Tensor) -> torch.Tensor:
        """``bool[B, N]``: False where a token credited to that position (as in :meth:`target_nats`)
        is not the argmax of the model's prediction, True elsewhere (greedy decoding, token by token)."""
        return self._target_scores(tokens_BN, patch_lengths_BP, targets_BN)[1]

    def _target_scores(self, tokens_BN: torch.Tensor, patch_lengths_BP: torch.Tensor,
                       targets_BN: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, N = targets_BN.shape
        row_BN1 = torch.cat([tokens_BN, targets_BN[:, -1:]], dim=1)
        if self.tokenizer is None:
            logits_BNV = self.logits(tokens_BN).float()
            nats = F.cross_entropy(logits_BNV.flatten(0, 1), targets_BN.flatten(), ignore_index=PAD_ID, reduction="none")
            return nats.view(B, N), (logits_BNV.argmax(-1) == targets_BN) | (targets_BN == PAD_ID)
        ids_BT, bytes_BT = self.token_ids(row_BN1, patch_lengths_BP)
        logits_BTV = self.logits(ids_BT[:, :-1]).float()
        want_BT = ids_BT[:, 1:]
        nats_BT = F.cross_entropy(logits_BTV.flatten(0, 1), want_BT.flatten(), ignore_index=PAD_ID,
                                  reduction="none").view(B, -1)
        wrong_BT = (logits_BTV.argmax(-1) != want_BT) & (want_BT != PAD_ID)
        # The k-th counted row position (neither pad nor delimiter: what bytes_BT counts), per row.
        counted_BN1 = (row_BN1 != PAD_ID) & (row_BN1 != BPE_ID)
        order_BN1 = torch.sort((~counted_BN1).to(torch.int8), dim=1, stable=True).indices
        n_counted = counted_BN1.sum(1, keepdim=True)
        covered_BT = bytes_BT.cumsum(1)[:, 1:]  # counted positions covered up to and including each target token
        rank_BT = torch.where(bytes_BT[:, 1:] > 0, covered_BT - 1, covered_BT)
        rank_BT = torch.minimum(rank_BT, (n_counted - 1).clamp(min=0))
        where_BT = (order_BN1.gather(1, rank_BT) - 1).clamp(min=0)  # row position -> target index
        nats = torch.zeros(B, N, dtype=torch.float32, device=tokens_BN.device).scatter_add_(1, where_BT, nats_BT)
        wrong = torch.zeros(B, N, dtype=torch.long, device=tokens_BN.device).scatter_add_(1, where_BT, wrong_BT.long())
        return nats, wrong == 0

    def logits(self, ids_BT: torch.Tensor) -> torch.Tensor:
        """``[B, T, vocab]`` logits for token ids (causal within EOS-delimited documents)."""
        B, T = ids_BT.shape
        h = self.embed(ids_BT)
        is_eos = (ids_BT == EOS_ID).long()
        doc_BT = torch.cumsum(is_eos, 1) - is_eos
        pos_BT = torch.arange(T, device=ids_BT.device).expand(B, T)
        attend = bind(self.attention, MaskDescription(PATCH_BLOCK_CAUSAL, pos_BT, pos_BT, doc_BT, doc_BT))
        rope = rope_for(T, self.layers[0], self.rope_theta, ids_BT.device)

        for layer in self.layers:
            h = layer(h, rope, attend)
        return self.head(self.norm(h))


__all__ = ["TokenLM"]
