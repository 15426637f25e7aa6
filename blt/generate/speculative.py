"""Exact self-speculative decoding: the local decoder drafts past a patch boundary, one global call verifies.

In cached generation (:mod:`blt.generate.cached`) every closed patch costs one call of the global
transformer before the next byte can be decoded. With ``speculative=K``, when a patch closes at
position t0 (and the next byte is not a prompt byte) the global call is deferred:

1. **draft**: the decoder decodes t0 with the global states it already has (the closed patch is
   not pushed yet), a byte is chosen from those logits, the encoder and the patcher consume it,
   and so on for up to K bytes; further patches closing inside the draft get their vectors from
   the encoder as usual (they depend on bytes only) and join the pending list;
2. **verify**: one call of the global stack runs every pending patch
   (:meth:`GlobalStep.close_row`, causal over them as one query sequence); then one pass of the
   decoder re-decodes t0, t0 + 1, ... with the right global states (its ``verify``: each position
   sees the patches closed before it, as stepping would), the logits plain cached generation
   computes there. A decoder step without ``reserve``/``verify`` is rewound to t0 and steps
   through the positions instead (the same logits, one call each);
3. **accept**: greedy keeps a draft byte iff it is the argmax of the exact logits; sampling keeps
   draft byte d drawn from q with probability ``min(1, p(d) / q(d))`` and on rejection draws from
   ``max(p - q, 0)`` renormalised (Leviathan et al., 2023, "Fast Inference from Transformers via
   Speculative Decoding"), which leaves every byte distributed as p (p, q: the filtered sampling
   distributions of the exact and the draft logits). The first rejected position's byte comes
   from the exact logits, so every round yields at least one byte;
4. **rewind**: the encoder, the patcher and the counters go back to their snapshot after the last
   kept position (:meth:`CachedGenerator.restore`), the global stack keeps only the verified
   patches (:meth:`GlobalStep.keep`).

Greedy output is the same byte sequence as plain cached generation (the logits are the same up to
rounding: the global stack runs several patches in one call). Drafting with stale global states is
the idea of the Fast BLT follow-up to the paper (Kallini et al., 2026). It pays when the global
model dominates a step: it saves global calls, not local ones (drafted bytes are decoded twice).

Rows are generated one at a time (rows advance by different amounts per round), so this is for
latency; batched cached generation is the throughput path.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from blt.core.errors import UnavailableError
from blt.generate.outputs import RowOutputs
from blt.generate.prefill import can_prefill, prefill
from blt.generate.sampling import sampling_probs
from blt.generate.steps import component_step
from blt.tokens import EOS_ID

REWIND = ("snapshot", "restore", "commit")


@attrs.define
class SpeculationStats:
    """Per row: ``rounds`` (verifications), ``drafted`` / ``accepted`` draft bytes, ``global_calls``
    (global-stack calls after the prompt: one per round), ``tokens`` generated and
    ``prompt_patches`` (patches closed at the prompt's positions, which plain generation runs too)."""

    rounds: int = 0
    drafted: int = 0
    accepted: int = 0
    global_calls: int = 0
    tokens: int = 0
    prompt_patches: int = 0

    def as_dict(self) -> dict:
        out = attrs.asdict(self)
        out["acceptance"] = self.accepted / self.drafted if self.drafted else 0.0
        out["accepted_per_round"] = self.accepted / self.rounds if self.rounds else 0.0
        out["global_calls_per_token"] = self.global_calls / self.tokens if self.tokens else 0.0
        return out


def speculation_problem(gen: Any, model: Any) -> str | None:
    """Why ``gen`` (a model's cached step) cannot decode speculatively, or None when it can."""
    name = type(model).__name__
    needed = ("advance", "close", "push", "decode", "snapshot", "restore", "commit")
    if not all(callable(getattr(gen, n, None)) for n in needed) or not callable(getattr(getattr(gen, "glob", None), "close_row", None)):
        return (f"speculative decoding drafts past the patch boundaries of a BLT's global model; {name}'s cached step "
                f"({type(gen).__name__}) has no such step to defer; generate without speculative (drop --speculative)")
    for what in ("encoder", "decoder"):
        step = getattr(gen, what)
        missing = [n for n in REWIND if not callable(getattr(step, n, None))]
        if missing:
            return (f"speculative decoding rewinds rejected drafts, and the {what} step {type(step).__name__} has no "
                    f"{'/'.join(m + '()' for m in missing)}; add them to it (see blt.generate.encoder_step.EncoderStep) "
                    "or generate without speculative (drop --speculative)")
    return None


def run_speculative(model: torch.nn.Module, patcher: Any, prompts: list[list[int]], max_new_bytes: int,
                    rows: RowOutputs, lookahead: int) -> tuple[list[int], list[dict]]:
    """Generate into ``rows``, one row at a time, drafting up to ``lookahead`` bytes per round;
    returns the patches closed and the :class:`SpeculationStats` (as dicts) per row."""
    device = next(model.parameters()).device
    patches, stats = [], []
    for b, prompt in enumerate(prompts):
        gen = component_step(model, "model", patcher, 1, len(prompt) + max_new_bytes)
        problem = speculation_problem(gen, model)
        if problem is not None:
            raise UnavailableError(problem)
        row = RowSpeculation(gen, rows, b, lookahead, device)
        row.run(prompt)
        patches.append(gen.patches_closed()[0])
        row.stats.tokens = len(rows.new_tokens[b])
        stats.append(row.stats.as_dict())
    return patches, stats


class RowSpeculation:
    def __init__(self, gen: Any, rows: RowOutputs, row: int, lookahead: int, device: torch.device) -> None:
        self.gen, self.rows, self.row, self.lookahead, self.device = gen, rows, row, lookahead, device
        self.params = rows.sampler.params
        self.rng = rows.sampler.generators[row]
        self.stats = SpeculationStats()
        # A decoder step with reserve()/verify() re-decodes a round's positions in one pass; any
        # other is rewound and re-decodes them one at a time (the same logits).
        decoder = gen.decoder
        self.batched = callable(getattr(decoder, "reserve", None)) and callable(getattr(decoder, "verify", None))

    def ids(self, token: int) -> torch.Tensor:
        return torch.tensor([token], dtype=torch.long, device=self.device)

    def run(self, prompt: list[int]) -> None:
        gen, rows, b = self.gen, self.rows, self.row
        token = prompt[0]
        if len(prompt) > 2 and can_prefill(gen, 1):
            # all but the last prompt position in blocks (blt.generate.prefill); the last one steps,
            # so a patch closing there starts a draft as usual
            prefill(gen, [prompt[:-1]], self.device)
            token = prompt[-1]
        if self.batched:
            gen.decoder.reserve(self.lookahead)
        while not rows.done[b]:
            position = gen.advance(self.ids(token))
            in_prompt = position.t + 1 < len(prompt)
            if position.t + 1 == len(prompt):
                self.stats.prompt_patches = gen.glob.counts[0] + bool(position.closing)
            if position.closing and not in_prompt:
                token = self.round(position)
                continue
            if position.closing:  # a prompt position: no draft
                gen.close(position)
            logits_V = gen.decode(position)[0]
            token = prompt[position.t + 1] if in_prompt else rows.add(b, logits_V)

    def round(self, first: Any) -> int:
        """Draft from ``first`` (a position whose patch closes), verify, rewind; -> the next token to feed."""
        gen, rows, b = self.gen, self.rows, self.row
        k = min(self.lookahead, rows.remaining(b))
        decoder_mark = None if self.batched else gen.decoder.snapshot()
        positions, marks = [first], [gen.snapshot()]
        drafts: list[int] = []
        draft_probs: list[torch.Tensor | None] = []
        for i in range(k):
            token, probs = self.draw(gen.decode(positions[i])[0])  # stale: the closing patches are not pushed
            drafts.append(token)
            draft_probs.append(probs)
            if i == k - 1 or (rows.stop_at_eos and token == EOS_ID):
                break
            positions.append(gen.advance(self.ids(token)))
            marks.append(gen.snapshot())
        closing = [(i, p) for i, p in enumerate(positions) if p.closing]
        states_M1G = gen.glob.close_row(0, torch.cat([p.vectors for _, p in closing]), [p.has_eos[0] for _, p in closing])
        self.stats.rounds += 1
        self.stats.global_calls += 1
        self.stats.drafted += len(drafts)
        if self.batched:
            last, token = self.verify_block(positions, closing, states_M1G, drafts, draft_probs)
        else:
            gen.decoder.restore(decoder_mark)
            last, token = self.verify_stepwise(positions, states_M1G, drafts, draft_probs)
        if last < len(positions) - 1:
            gen.restore(marks[last])
        gen.commit()
        return token

    def accept(self, i: int, logits_V: torch.Tensor, drafts: list[int], draft_probs: list, last: int) -> tuple[int, bool]:
        """Position i's byte from its exact logits, recorded; -> (the byte, whether verification stops here)."""
        token, kept = self.check(logits_V, drafts[i], draft_probs[i])
        self.rows.put(self.row, logits_V, token)
        self.stats.accepted += kept
        return token, not kept or self.rows.done[self.row] or i == last

    def verify_block(self, positions: list, closing: list, states_M1G: torch.Tensor, drafts: list[int],
                     draft_probs: list) -> tuple[int, int]:
        """All drafted positions through the decoder in one pass, then the rule position by
        position; the kept patches are pushed into the decoder. -> (the last kept position, the
        next token)."""
        gen = self.gen
        logits_MV = gen.verify(positions, *gen.block_schedule(positions, states_M1G))
        for i in range(len(positions)):
            token, stop = self.accept(i, logits_MV[i], drafts, draft_probs, len(positions) - 1)
            if stop:
                break
        for q, (j, position) in enumerate(closing):
            if j > i:
                break
            gen.glob.keep(q + 1)
            gen.push(position, states_M1G[q : q + 1])
        return i, token

    def verify_stepwise(self, positions: list, states_M1G: torch.Tensor, drafts: list[int],
                        draft_probs: list) -> tuple[int, int]:
        """The drafted positions through the decoder one at a time (a decoder step without
        ``verify``), pushing each kept patch before the position that reads it."""
        gen, pushed = self.gen, 0
        for i, position in enumerate(positions):
            if position.closing:
                pushed += 1
                gen.glob.keep(pushed)
                gen.push(position, states_M1G[pushed - 1 : pushed])
            token, stop = self.accept(i, gen.decode(position)[0], drafts, draft_probs, len(positions) - 1)
            if stop:
                break
        return i, token

    def draw(self, logits_V: torch.Tensor) -> tuple[int, torch.Tensor | None]:
        """A draft byte from the draft logits (and its sampling distribution q when sampling)."""
        if self.params.greedy:
            return int(torch.argmax(logits_V)), None
        q_V = sampling_probs(logits_V, self.params)
        return int(torch.multinomial(q_V, 1, generator=self.rng)), q_V

    def check(self, logits_V: torch.Tensor, draft: int, q_V: torch.Tensor | None) -> tuple[int, bool]:
        """(the byte at this position, whether it is the draft) from the exact logits."""
        if q_V is None:
            token = int(torch.argmax(logits_V))
            return token, token == draft
        return accept_or_resample(sampling_probs(logits_V, self.params), q_V, draft, self.rng)


def accept_or_resample(p_V: torch.Tensor, q_V: torch.Tensor, draft: int, rng: torch.Generator) -> tuple[int, bool]:
    """The speculative sampling rule: keep ``draft`` (drawn from ``q``) with probability
    ``min(1, p/q)``, else draw from ``max(p - q, 0)`` renormalised; the result is distributed as ``p``."""
    u = float(torch.rand((), generator=rng))
    if u * float(q_V[draft]) < float(p_V[draft]):  # u < p/q without dividing
        return draft, True
    residual_V = (p_V - q_V).clamp_(min=0)
    if float(residual_V.sum()) <= 0:  # p == q up to rounding: a rejection is a rounding artefact
        residual_V = p_V
    return int(torch.multinomial(residual_V, 1, generator=rng)), False
