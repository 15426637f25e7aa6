"""The H-Net language model with Transformer blocks (arXiv 2507.07955), one or two stages.

A stage on a sequence ``x`` of ``L`` positions (bytes, or the chunks of the stage outside it)::

    xhat = norm(Encoder(x))                      causal within documents
    p, b = Router(xhat)                          b_t = p_t >= 0.5, a document's first position always
    zhat = Inner(up(xhat at boundaries))         the main network, or the next stage
    z    = upsample(EMA(down(zhat), P)) * STE(c) + Residual(xhat)     c_t = p_t if b_t else 1 - p_t
    out  = norm(Decoder(z))                      causal within documents

``STE(c)`` is 1 in the forward pass and passes the gradient to ``c``; the EMA passes it to ``P``.
The residual projection starts random or at zero (``residual_init``). ``up``/``down`` are linear maps between
the levels' widths (absent when they are equal). The byte level ends in the 260-way head.

Causality: the boundary decision at t reads states t - 1 and t; a chunk's state is the encoder
state at its first position; position t reads the most recent chunk that started at or before t,
and the main network over chunks is causal. So the logits at t depend on bytes <= t only. A
document never sees another: attention is blocked at EOS, every document starts a chunk and that
chunk's ``P = 1`` restarts the EMA.

The model chooses its own chunks: the patcher's lengths are not read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from blt.attention.backend import bind
from blt.attention.masks import LOCAL_BLOCK_CAUSAL, PATCH_BLOCK_CAUSAL, MaskDescription
from blt.model.blocks import RMSNorm, trunc_normal_
from blt.model.local import init_layers, make_layers, rope_for
from blt.plugins.models.dynamic_chunking import chunking, routing
from blt.tokens import EOS_ID, PAD_ID, VOCAB_SIZE
from blt.train.objective import cross_entropy_sum, target_byte_count


class Network(nn.Module):
    """A stack of Transformer layers with a final RMSNorm, causal within documents."""

    def __init__(self, n_layers: int, dim: int, heads: int, ffn: int | None, config: Any, window: int | None = None,
                 byte_level: bool = False) -> None:
        super().__init__()
        self.layers = make_layers(n_layers, dim, heads, None, ffn, config.norm_eps)
        self.norm = RMSNorm(dim, config.norm_eps)
        self.rope_theta, self.window, self.byte_level = config.rope_theta, window, byte_level
        init_layers(self.layers, config.init_std_factor)

    def forward(self, x_BLD: torch.Tensor, doc_BL: torch.Tensor, backend: Any) -> torch.Tensor:
        B, L, _ = x_BLD.shape
        pos_BL = torch.arange(L, device=x_BLD.device).expand(B, L)
        if self.byte_level:  # bytes: causal within documents, optionally windowed
            mask = MaskDescription(LOCAL_BLOCK_CAUSAL, pos_BL, pos_BL, doc_BL, doc_BL, self.window)
        else:  # chunks: causal within documents
            mask = MaskDescription(PATCH_BLOCK_CAUSAL, pos_BL, pos_BL, doc_BL, doc_BL)
        attend = bind(backend, mask)
        rope = rope_for(L, self.layers[0], self.rope_theta, x_BLD.device) if len(self.layers) else None
        for layer in self.layers:
            x_BLD = layer(x_BLD, rope, attend)
        return self.norm(x_BLD)

    def flops(self, L: float, attention: str) -> float:
        from blt.flops import layers_flops

        return layers_flops(self.layers, L, self.window if self.byte_level else None, attention)


class Stage(nn.Module):
    """One H-Net stage at ``level`` (0 = bytes); ``inner`` is the next stage or the main network."""

    def __init__(self, level: int, config: Any, inner: nn.Module) -> None:
        super().__init__()
        d, d_next = config.d_model[level], config.d_model[level + 1]
        ffn = config.ffn[level] if config.ffn else None
        window = config.byte_window if level == 0 else None
        self.level, self.target = level, float(config.compression[level])
        self.encoder = Network(config.encoder_layers[level], d, config.heads[level], ffn, config, window, level == 0)
        self.router = routing.Router(d)
        self.up = nn.Linear(d, d_next, bias=False) if d != d_next else None
        self.inner = inner
        self.down = nn.Linear(d_next, d, bias=False) if d != d_next else None
        self.residual = nn.Linear(d, d, bias=False)
        if config.residual_init == "zero":
            nn.init.zeros_(self.residual.weight)
        else:
            trunc_normal_(self.residual.weight, d**-0.5)
        self.decoder = Network(config.decoder_layers[level], d, config.heads[level], ffn, config, window, level == 0)
        for proj in (self.up, self.down):
            if proj is not None:
                trunc_normal_(proj.weight, proj.in_features**-0.5)

    def route(self, x_BLD: torch.Tensor, doc_BL: torch.Tensor, backend: Any):
        """``(xhat, p, b, chunks)``: the encoder's states and the router's decisions."""
        xhat_BLD = self.encoder(x_BLD, doc_BL, backend)
        p_BL = self.router(xhat_BLD, chunking.document_starts(doc_BL))
        b_BL = routing.boundaries(p_BL)
        return xhat_BLD, p_BL, b_BL, chunking.make_chunks(b_BL)

    def forward(self, x_BLD: torch.Tensor, doc_BL: torch.Tensor, valid_BL: torch.Tensor, backend: Any,
                record: list, route_only: bool = False) -> torch.Tensor | None:
        xhat_BLD, p_BL, b_BL, chunks = self.route(x_BLD, doc_BL, backend)
        record.append((self, b_BL, p_BL, valid_BL))
        inner_x = chunks.gather(xhat_BLD)
        inner_doc = chunking.chunk_documents(chunks, doc_BL)
        inner_valid = chunks.real_BM & chunks.gather(valid_BL)
        if isinstance(self.inner, Stage):
            if route_only:
                self.inner(self._up(inner_x), inner_doc, inner_valid, backend, record, route_only=True)
                return None
            zhat = self.inner(self._up(inner_x), inner_doc, inner_valid, backend, record)
        else:
            if route_only:
                return None
            zhat = self.inner(self._up(inner_x), inner_doc, backend)
        if self.down is not None:
            zhat = self.down(zhat)
        z_BMD = chunking.ema_smooth(zhat, chunks.gather(p_BL))
        scale_BL1 = routing.straight_through(routing.confidence(b_BL, p_BL)).unsqueeze(-1)
        z_BLD = chunks.upsample(z_BMD) * scale_BL1 + self.residual(xhat_BLD)
        return self.decoder(z_BLD, doc_BL, backend)

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.up is None else self.up(x)


class DynamicChunkingLM(nn.Module):
    """``model(tokens [B, N], patch_lengths) -> float32 logits [B, N, 260]``;
    ``model(tokens, patch_lengths, targets) -> (summed cross-entropy, target bytes)``.

    ``patch_lengths`` is accepted for the model family's contract and not read. After a training
    forward, :meth:`aux_loss` holds the weighted ratio loss and compression metrics."""

    def __init__(self, config: Any, attention: Any) -> None:
        super().__init__()
        self.config = config
        self.attention = attention  # an attention backend (not a module)
        S = config.stages
        last = config.d_model[S]
        inner: nn.Module = Network(config.main_layers, last, config.heads[S], config.ffn[S] if config.ffn else None, config)
        for level in reversed(range(S)):
            inner = Stage(level, config, inner)
        self.stage = inner
        d0 = config.d_model[0]
        self.embed = nn.Embedding(VOCAB_SIZE, d0)
        self.head = nn.Linear(d0, VOCAB_SIZE, bias=False)
        trunc_normal_(self.embed.weight, d0**-0.5)
        trunc_normal_(self.head.weight, d0**-0.5)
        self._aux: tuple[torch.Tensor, dict[str, float]] | None = None

    # --- forward ---------------------------------------------------------------------------------
    def _byte_inputs(self, tokens_BN: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tokens_BN = tokens_BN.long()
        is_eos = (tokens_BN == EOS_ID).long()
        doc_BN = torch.cumsum(is_eos, 1) - is_eos  # an EOS closes its own document
        return self.embed(tokens_BN), doc_BN, tokens_BN != PAD_ID

    def logits(self, tokens_BN: torch.Tensor) -> torch.Tensor:
        x_BND, doc_BN, valid_BN = self._byte_inputs(tokens_BN)
        record: list = []
        h_BND = self.stage(x_BND, doc_BN, valid_BN, self.attention, record)
        if self.training:
            self._aux = self._ratio_terms(record)
        return self.head(h_BND).float()

    def forward(self, tokens_BN: torch.Tensor, patch_lengths_BP: torch.Tensor | None = None,
                targets_BN: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, int]:
        logits_BNV = self.logits(tokens_BN)
        if targets_BN is None:
            return logits_BNV
        return cross_entropy_sum(logits_BNV, targets_BN), target_byte_count(targets_BN)

    def target_nats(self, tokens_BN: torch.Tensor, patch_lengths_BP: torch.Tensor, targets_BN: torch.Tensor) -> torch.Tensor:
        """Nats per target position ``[B, N]`` (0 at pad targets); sums to forward's ce_sum."""
        logits_BNV = self.logits(tokens_BN).float()
        nats = F.cross_entropy(logits_BNV.transpose(1, 2), targets_BN, ignore_index=PAD_ID, reduction="none")
        return nats.float()

    # --- the ratio loss and statistics -----------------------------------------------------------
    def _ratio_terms(self, record: list) -> tuple[torch.Tensor, dict[str, float]]:
        total, metrics = None, {}
        for stage, b_BL, p_BL, valid_BL in record:
            loss = routing.ratio_loss(b_BL, p_BL, valid_BL, stage.target)
            total = loss if total is None else total + loss
            n = int(valid_BL.sum())
            chunks = int((b_BL & valid_BL).sum())
            metrics[f"compression_stage{stage.level + 1}"] = n / max(chunks, 1)
            metrics[f"ratio_loss_stage{stage.level + 1}"] = float(loss.detach())
        metrics["ratio_loss"] = float(total.detach())
        return self.config.ratio_loss_weight * total, metrics

    def aux_loss(self) -> tuple[torch.Tensor, dict[str, float]] | None:
        """The last training forward's ``(ratio_loss_weight * sum of the stages' ratio losses,
        metrics)``, then forgotten (None when there was none). The trainer adds it to the loss."""
        aux, self._aux = self._aux, None
        return aux

    @torch.no_grad()
    def routing_decisions(self, tokens_BN: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Per stage (outermost first): ``{"p", "b", "valid", "start"}``; ``start`` maps the stage's
        positions to the byte where each begins (``[B, L_s]``). Runs the encoders and routers only."""
        x_BND, doc_BN, valid_BN = self._byte_inputs(tokens_BN)
        record: list = []
        self.stage(x_BND, doc_BN, valid_BN, self.attention, record, route_only=True)
        out, start_BL = [], torch.arange(tokens_BN.shape[1], device=tokens_BN.device).expand_as(tokens_BN)
        for _stage, b_BL, p_BL, valid_BL in record:
            out.append({"p": p_BL, "b": b_BL, "valid": valid_BL, "start": start_BL})
            chunks = chunking.make_chunks(b_BL)
            start_BL = chunks.gather(start_BL)
        return out

    def eval_counts(self, tokens_BN: torch.Tensor, patch_lengths_BP: torch.Tensor | None = None) -> dict[str, float]:
        """Additive chunk counts of a batch, per stage ``S``: ``positions_stageS`` (the stage's
        non-pad input positions; BOS and EOS count, like every target) and ``chunks_stageS`` (its
        boundaries among them). Held-out evaluation sums them over every batch before
        :meth:`stats_from_counts` divides: bytes per chunk of a split is its bytes over its chunks,
        which is what the ratio loss steers (its F is chunks over positions); a mean of per-batch
        ratios overstates it (a batch of long chunks weighs as much as a batch of short ones)."""
        counts = {}
        for s, d in enumerate(self.routing_decisions(tokens_BN), start=1):
            counts[f"positions_stage{s}"] = float(d["valid"].sum())
            counts[f"chunks_stage{s}"] = float((d["b"] & d["valid"]).sum())
        return counts

    def stats_from_counts(self, counts: dict[str, float]) -> dict[str, float]:
        """Realised chunking from summed :meth:`eval_counts`: ``compression_stageS`` (the stage's
        input positions per chunk), ``bytes_per_chunk_stageS`` for S > 1 and ``avg_patch_size``
        (bytes per stage-1 chunk)."""
        stats = {}
        for s in range(1, self.config.stages + 1):
            chunks = max(counts.get(f"chunks_stage{s}", 0.0), 1.0)
            stats[f"compression_stage{s}"] = counts.get(f"positions_stage{s}", 0.0) / chunks
            if s > 1:
                stats[f"bytes_per_chunk_stage{s}"] = counts.get("positions_stage1", 0.0) / chunks
        stats["avg_patch_size"] = stats["compression_stage1"]
        return stats

    def eval_stats(self, tokens_BN: torch.Tensor, patch_lengths_BP: torch.Tensor | None = None) -> dict[str, float]:
        """:meth:`stats_from_counts` of one batch's :meth:`eval_counts`."""
        return self.stats_from_counts(self.eval_counts(tokens_BN, patch_lengths_BP))

    # --- FLOPs -----------------------------------------------------------------------------------
    def flops(self, n_bytes: float, avg_patch_size: float | None = None, attention: str = "causal",
              compression: Sequence[float] | None = None) -> dict[str, float]:
        """Forward FLOPs of one row of ``n_bytes`` bytes by component.

        The chunk counts are data dependent: stage ``s`` runs on ``L_s = L_{s-1} / compression[s]``
        positions (``L_0 = n_bytes``), by default the configured targets (what the ratio loss
        steers to; the training budget uses them), or the realised ratios when given (the
        contract suite passes a row's, see :meth:`flops_kwargs`). ``avg_patch_size`` is the
        patcher's, which this model does not read, so it is not used.

        encoder / decoder: their Transformer layers at each stage (the decoder includes the
        residual projection); router: ``W_q``, ``W_k`` (``2 * 2 L d^2``); main: the main network
        and the width projections into and out of each inner level; head: ``2 N d V``. The
        cosine, EMA, gathers and STE are elementwise (0 matmul FLOPs)."""
        from blt.flops import linear_flops

        ratios = list(self.config.compression if compression is None else compression)
        out = {"encoder": 0.0, "router": 0.0, "main": 0.0, "decoder": 0.0}
        L, stage = float(n_bytes), self.stage
        for ratio in ratios:
            L_in = L / float(ratio)
            out["encoder"] += stage.encoder.flops(L, attention)
            out["router"] += linear_flops(L, stage.router.q_proj) + linear_flops(L, stage.router.k_proj)
            out["main"] += linear_flops(L_in, stage.up) + linear_flops(L_in, stage.down)
            out["decoder"] += stage.decoder.flops(L, attention) + linear_flops(L, stage.residual)
            L, stage = L_in, stage.inner
        out["main"] += stage.flops(L, attention)
        out["head"] = linear_flops(float(n_bytes), self.head)
        return out

    def flops_kwargs(self, tokens_BN: torch.Tensor, patch_lengths_BP: torch.Tensor | None = None) -> dict[str, Any]:
        """The data-dependent arguments of :meth:`flops` for these rows: the realised chunk ratio
        of every stage (all positions, as the forward runs them)."""
        ratios = []
        for d in self.routing_decisions(tokens_BN):
            ratios.append(d["b"].numel() / max(int(d["b"].sum()), 1))
        return {"compression": ratios}

    # --- learned patches, for `blt patch --run` --------------------------------------------------
    def learned_patches(self, tokens_N: torch.Tensor) -> list[tuple[str, list[int], list[float]]]:
        """For one row: per stage, ``(label, chunk lengths in bytes, score per byte)``; the score
        is the boundary probability of the stage's position holding the byte."""
        out = []
        decisions = self.routing_decisions(tokens_N.reshape(1, -1))
        n = tokens_N.numel()
        for s, d in enumerate(decisions, start=1):
            starts = d["start"][0][d["b"][0]].tolist()
            lengths = [b - a for a, b in zip(starts, [*starts[1:], n])]
            # each byte's score: p of the stage position whose span holds it
            owner = torch.searchsorted(d["start"][0], torch.arange(n, device=tokens_N.device), right=True) - 1
            scores = d["p"][0][owner].float().tolist()
            out.append((f"dynamic_chunking stage {s}", lengths, scores))
        return out


__all__ = ["DynamicChunkingLM", "Network", "Stage"]
