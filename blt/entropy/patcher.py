"""The patcher shared by the ``entropy`` and ``cnn_entropy`` kinds: one class, one config base.

A plugin file only names its kind, its model kind and its calibrated default threshold.
"""

from __future__ import annotations

import copy

import pathlib
from typing import Annotated, Any

import torch
from msgspec import Meta

from blt.core.config import PatcherConfig, PositiveInt
from blt.core.patching import Patches, as_batch, finish
from blt.entropy.compute import entropies as model_entropies
from blt.entropy.io import load_entropy_model, shipped_model_path
from blt.entropy.rules import check_entropies, entropy_starts, step_start
from blt.tokens import EOS_ID


class EntropyPatcherConfig(PatcherConfig, tag_field="kind"):
    """Fields shared by the entropy patchers.

    Give at most one of ``threshold`` (global rule, strict ``>``) and ``relative_threshold``
    (approximate monotonic rule). With neither, the kind's calibrated default threshold for the
    shipped model is used (about 4.5 bytes per patch on the built-in corpus). A custom
    ``model_path`` needs its own threshold (find one with ``blt calibrate``).
    """

    threshold: float | None = None
    relative_threshold: float | None = None
    model_path: str | None = None
    batch_size: Annotated[int, Meta(ge=1)] = 16
    chunk: PositiveInt = 512

    def __post_init__(self) -> None:
        if self.threshold is not None and self.relative_threshold is not None:
            raise ValueError("give exactly one of threshold (global rule) or relative_threshold (monotonic rule), not both")
        if self.model_path is not None and self.threshold is None and self.relative_threshold is None:
            raise ValueError("model_path is set: give threshold or relative_threshold for that model (find one with `blt calibrate`)")


class EntropyPatcher:
    """Patches by the entropy of a byte LM's next-token prediction (the rules of :mod:`blt.entropy.rules`).

    ``patch(tokens, include_next_token=False, entropies=None) -> Patches(lengths, scores=entropies)``.
    Given ``entropies`` bypass the model; otherwise the model (loaded lazily once) computes them in
    batches of ``batch_size`` rows.
    """

    incremental = True

    def __init__(
        self, config: EntropyPatcherConfig, *, model_kind: str, default_threshold: float, model: torch.nn.Module | None = None
    ) -> None:
        """``model``: an entropy model already in memory (e.g. converted from Hugging Face); when
        given, ``model_path`` is not read."""
        self.config = config
        self.model_kind = model_kind
        if config.threshold is None and config.relative_threshold is None:
            self.threshold: float | None = default_threshold
        else:
            self.threshold = config.threshold
        self.relative_threshold = config.relative_threshold
        self._model: Any = model

    @property
    def model_path(self) -> pathlib.Path:
        return pathlib.Path(self.config.model_path) if self.config.model_path else shipped_model_path(self.model_kind)

    @property
    def model(self) -> torch.nn.Module:
        """The entropy model, loaded on first use."""
        if self._model is None:
            self._model = load_entropy_model(self.model_path, expect_kind=self.model_kind)
        return self._model

    def compute_entropies(self, tokens_BN: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` entropies from the model, ``batch_size`` rows at a time."""
        bs = self.config.batch_size
        parts = [model_entropies(self.model, tokens_BN[i : i + bs], chunk=self.config.chunk) for i in range(0, tokens_BN.shape[0], bs)]
        return torch.cat(parts, dim=0) if parts else torch.zeros(0, tokens_BN.shape[1])

    def start_stepper(self, batch: int) -> EntropyStarts:
        """Generation: the entropy model advances one byte with its stream state (the transformer
        keeps only its last ``window - 1`` keys, the CNN only the previous byte), then the rule."""
        return EntropyStarts(self, batch)

    def patch(self, tokens: torch.Tensor, *, include_next_token: bool = False, entropies: torch.Tensor | None = None) -> Patches:
        tokens_BN, squeeze = as_batch(tokens)
        e_BN = self.compute_entropies(tokens_BN) if entropies is None else check_entropies(entropies, tokens_BN)
        n_out = tokens_BN.shape[1] + int(include_next_token)
        starts = entropy_starts(e_BN, n_out, threshold=self.threshold, relative_threshold=self.relative_threshold)
        return finish(starts, self.config.max_patch_length, squeeze, scores=e_BN)


class ModuleStream:
    """Any entropy model one token per row per call: its forward continuing a stream state (the
    path of a model without ``fast_stream``). After an EOS the finished document's keys are hidden
    from the next one (documents are patched alone)."""

    def __init__(self, model: torch.nn.Module, batch: int) -> None:
        self.model, self.state = model, model.new_state(batch)

    def step(self, tokens_B: torch.Tensor) -> torch.Tensor:
        logits_BV = self.model(tokens_B[:, None], self.state)[:, 0]
        ended_B = tokens_B == EOS_ID
        key_pos = getattr(self.state, "key_pos_BS", None)
        if key_pos is not None and bool(ended_B.any()):
            key_pos[ended_B] = -(2**40)
        return logits_BV

    def snapshot(self) -> tuple:
        """For speculative decoding; a stream state without ``snapshot`` is copied."""
        own = callable(getattr(self.state, "snapshot", None))
        return own, self.state.snapshot() if own else copy.deepcopy(self.state)

    def restore(self, mark: tuple) -> None:
        own, state = mark
        if own:
            self.state.restore(state)
        else:
            self.state = copy.deepcopy(state)


class EntropyStarts:
    """Runs the patcher's entropy model one byte at a time (its stream is the cache), then the
    global (``e[t] > θ``) or relative (``e[t] - e[t-1] > θr``) rule, as :meth:`EntropyPatcher.patch`."""

    def __init__(self, patcher: EntropyPatcher, batch: int) -> None:
        from blt.entropy.compute import entropy_from_logits
        from blt.generate.documents import DocumentClock

        self.model = patcher.model
        # A model may offer its own one-token stream for generation (the transformer's runs the
        # cached-generation layers, the CNN's looks up tables); otherwise its forward continues a
        # stream state. Both hide a finished document from the next.
        fast = getattr(self.model, "fast_stream", None)
        self.stream = fast(batch) if callable(fast) else ModuleStream(self.model, batch)
        self.threshold, self.relative = patcher.threshold, patcher.relative_threshold
        self.entropy = entropy_from_logits
        self.prev_e_B: torch.Tensor | None = None
        self.device = self.model.embed_tokens.weight.device
        self.clock = DocumentClock()

    def snapshot(self) -> tuple:
        """For speculative decoding; a stream without ``snapshot`` is copied (its modules shared)."""
        from blt.generate.patch_starts import shared_modules

        own = callable(getattr(self.stream, "snapshot", None))
        stream = self.stream.snapshot() if own else copy.deepcopy(self.stream, shared_modules(self.stream))
        return own, stream, self.prev_e_B, self.clock.snapshot()

    def restore(self, mark: tuple) -> None:
        from blt.generate.patch_starts import shared_modules

        own, stream, self.prev_e_B, clock = mark
        if own:
            self.stream.restore(stream)
        else:
            self.stream = copy.deepcopy(stream, shared_modules(stream))
        self.clock.restore(clock)

    def commit(self) -> None:
        """Marks taken so far will not be restored (a stream with ``commit`` stops saving)."""
        if callable(getattr(self.stream, "commit", None)):
            self.stream.commit()

    def step(self, tokens_B: torch.Tensor, t: int) -> torch.Tensor:
        """Each document is patched alone, as training patches it: the rule restarts after an EOS
        (its first positions start, the relative rule's first difference is within the document)
        and the stream hides the model's earlier keys from the new document."""
        e_B = self.entropy(self.stream.step(tokens_B.to(self.device))).to(tokens_B.device)  # e[t]: of the prediction of t + 1
        prev, self.prev_e_B = self.prev_e_B, e_B
        p_B = self.clock.local(tokens_B, t) + 1  # position t + 1 within its document
        rule_B = step_start(e_B, prev, t + 1, threshold=self.threshold, relative_threshold=self.relative)
        forced_B = (p_B <= 1) | (tokens_B == EOS_ID) | ((p_B == 2) & (self.relative is not None))
        return rule_B | forced_B
