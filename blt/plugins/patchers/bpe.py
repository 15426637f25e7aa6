"""``bpe``: patches along the token boundaries of a byte-level BPE model (the tokenizer baseline).

Two kinds of row, told apart per row by whether it holds a BPE delimiter (id 3):

**Delimited rows** (the stream a model trains and generates on). :meth:`BpePatcher.delimit`
inserts a delimiter after every BPE piece of every run of bytes (a document's last piece too), so
the piece boundaries are tokens of the stream: the model reads them and predicts them. Rule:
positions 0 and 1 start a patch, and position p >= 2 starts one iff token p - 1 is a special
(delimiter, pad, BOS or EOS); with ``include_next_token=True`` position N starts one iff token
N - 1 is a special. So a patch is one BPE piece followed by its delimiter (the delimiter is the
*last* token of its patch), and on a delimited document BOS and EOS are patches of their own (the
token before EOS is a delimiter). Whether p starts a patch depends only on tokens before p: the
rule is causal and prefix-stable, :meth:`BpePatcher.start_stepper` steps it one token at a time
(cached generation) and :meth:`BpePatcher.patch_prepared` applies it to a row whether or not it
holds a delimiter yet (a generation prefix may not). Bits per byte count every target, delimiters
included, in the loss but divide by bytes only: a delimiter target is not a byte.

**Raw rows** (no delimiter: plain ``blt.tokens.encode`` output, ``blt patch``). Positions 0 and 1
start a patch; every other special token (pad, BOS, EOS) is a patch of its own, so it starts a
patch and so does the position after it. Each maximal run of byte tokens between specials is one
*segment*; it is tokenized on its own and every BPE token after the first starts a patch. With
``include_next_token=True`` position N (the unseen next byte) always starts a new patch. Not
incremental (``incremental = False``): appending bytes can merge or re-split the last BPE tokens
of a prefix (the contract suite finds an example), and whether byte t + 1 starts a piece is
visible at t. A model must not train on raw-row patches; the data pipeline delimits every
document first (``prepare_document``) and generation delimits prompts (``prepare_prompt``).

Either way, rows sum to N (N + 1 with ``include_next_token``) and ``max_patch_length`` splits
long patches last.

Byte offsets are exact for multi-byte UTF-8 and for invalid UTF-8: a ByteLevel tokenizer works
on a string with one character per byte, so a token's length in characters is its length in
bytes. Valid UTF-8 text is encoded with ``Tokenizer.encode`` (the library's own pre-tokenizer);
a run of invalid bytes is its own pre-token, mapped through the ByteLevel byte->char table and
given to the BPE model directly. The library's ``offsets`` (character offsets) are never used.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import torch
from msgspec import Meta

from blt.core.atomic import atomic_path
from blt.core.config import PatcherConfig
from blt.core.errors import ConfigError, InputError
from blt.core.hookspecs import hookimpl
from blt.core.patching import Patches, as_batch, dynamic_prefix, finish
from blt.core.specs import PatcherSpec
from blt.tokens import BPE_ID, OFFSET

DEFAULT_VOCAB_SIZE = 4096
_INVALID_RUN = re.compile("([\udc80-\udcff]+)")  # bytes that surrogateescape could not decode


class BpeConfig(PatcherConfig, tag="bpe"):
    """``tokenizer_path``: a ``tokenizers`` JSON file of a byte-level BPE. ``None`` uses a default
    tokenizer trained (deterministically) on the built-in corpus with ``vocab_size`` and cached in
    ``$BLT_CACHE_DIR`` (default ``~/.cache/blt-lab``)."""

    tokenizer_path: str | None = None
    vocab_size: Annotated[int, Meta(ge=257)] = DEFAULT_VOCAB_SIZE


def cache_dir() -> Path:
    """Where derived artefacts (the default tokenizer) are cached."""
    return Path(os.environ.get("BLT_CACHE_DIR") or Path.home() / ".cache" / "blt-lab")


def _byte_to_char() -> list[str]:
    """The GPT-2 / ByteLevel table: byte b -> the printable character that stands for it."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return [table[b] for b in range(256)]


BYTE_TO_CHAR = _byte_to_char()


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int, path: str | Path) -> Path:
    """Train a byte-level BPE (ByteLevel pre-tokenizer and decoder, all 256 bytes in the alphabet)
    on ``texts`` and save it as a ``tokenizers`` JSON file at ``path`` (written atomically)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    path = Path(path)
    with atomic_path(path) as tmp:
        tokenizer.save(str(tmp))
    return path


def default_tokenizer_path(vocab_size: int = DEFAULT_VOCAB_SIZE) -> Path:
    """The cached default tokenizer for ``vocab_size``, trained on the built-in corpus if missing.

    The file name carries a digest of the corpus file, so a changed corpus retrains."""
    from blt.corpus import builtin_corpus_path, load_builtin_corpus

    digest = hashlib.sha256(builtin_corpus_path().read_bytes()).hexdigest()[:12]
    path = cache_dir() / f"bpe-builtin-v{vocab_size}-{digest}.json"
    if not path.is_file():
        train_bpe_tokenizer((doc.text for doc in load_builtin_corpus("train")), vocab_size, path)
    return path


def load_bpe_tokenizer(path: str | Path) -> Any:
    """Load a tokenizer file and check it is a byte-level BPE without a normalizer."""
    from tokenizers import Tokenizer

    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(
            f"$.patcher.tokenizer_path: tokenizer file not found: {p} (train one with "
            "blt.plugins.patchers.bpe.train_bpe_tokenizer, or leave tokenizer_path unset for the built-in default)"
        )
    try:
        tokenizer = Tokenizer.from_file(str(p))
    except Exception as exc:  # the Rust loader raises a bare Exception
        raise ConfigError(f"$.patcher.tokenizer_path: cannot load tokenizer file {p}: {exc}") from None
    desc = json.loads(tokenizer.to_str())
    pre = desc.get("pre_tokenizer") or {}
    if desc.get("model", {}).get("type") != "BPE" or pre.get("type") != "ByteLevel" or desc.get("normalizer"):
        raise ConfigError(
            f"$.patcher.tokenizer_path: {p} is not a byte-level BPE (need model BPE, a ByteLevel "
            "pre-tokenizer and no normalizer); train one with train_bpe_tokenizer"
        )
    return tokenizer


class BpePatcher:
    """Patches = byte-level BPE tokens; see the module docstring for the two row kinds."""

    incremental = False  # raw rows; the delimited stream is prefix-stable (start_stepper)

    def __init__(self, config: BpeConfig) -> None:
        self.config = config
        path = config.tokenizer_path or default_tokenizer_path(config.vocab_size)
        self.tokenizer = load_bpe_tokenizer(path)

    def token_byte_lengths(self, raw: bytes) -> list[int]:
        """Byte lengths of the BPE tokens of one segment (they sum to ``len(raw)``)."""
        text = raw.decode("utf-8", errors="surrogateescape")
        lengths: list[int] = []
        for i, piece in enumerate(_INVALID_RUN.split(text)):
            if not piece:
                continue
            if i % 2:  # a run of invalid bytes: map each byte to its ByteLevel character
                mapped = "".join(BYTE_TO_CHAR[ord(c) - 0xDC00] for c in piece)
                lengths += [len(tok.value) for tok in self.tokenizer.model.tokenize(mapped)]
            else:
                lengths += [len(tok) for tok in self.tokenizer.encode(piece, add_special_tokens=False).tokens]
        if sum(lengths) != len(raw):
            raise InputError(f"bpe tokenizer covered {sum(lengths)} of {len(raw)} bytes; is it a byte-level BPE?")
        return lengths

    # --- the delimited stream -------------------------------------------------------------
    def delimit(self, tokens: torch.Tensor | list[int], *, open_end: bool = False) -> torch.Tensor:
        """``LongTensor[N]`` -> ``LongTensor[M]``: a delimiter after every BPE piece of every run of
        bytes (delimiters already present are dropped first, so this is idempotent). Special tokens
        stay where they are. ``open_end``: when the row ends with a byte, its last piece gets no
        delimiter (a prompt: the model decides whether that piece is complete)."""
        ids = [t for t in (tokens.tolist() if isinstance(tokens, torch.Tensor) else list(tokens)) if t != BPE_ID]
        out: list[int] = []
        for is_byte, group in itertools.groupby(ids, key=lambda t: t >= OFFSET):
            run = list(group)
            if not is_byte:
                out += run
                continue
            pos = 0
            for n in self.token_byte_lengths(bytes(t - OFFSET for t in run)):
                out += run[pos : pos + n]
                out.append(BPE_ID)
                pos += n
        if open_end and ids and ids[-1] >= OFFSET:
            out.pop()
        return torch.tensor(out, dtype=torch.long)

    def prepare_document(self, tokens_N: torch.Tensor) -> torch.Tensor:
        """Data pipeline hook: a document (``BOS bytes... EOS``) as the model reads it, every piece delimited."""
        return self.delimit(tokens_N)

    def prepare_prompt(self, ids: list[int]) -> list[int]:
        """Generation hook: a prompt delimited as training delimits, its last piece left open."""
        return self.delimit(ids, open_end=True).tolist()

    def patch_prepared(self, tokens: torch.Tensor, *, include_next_token: bool = False,
                       entropies: torch.Tensor | None = None) -> Patches:
        """The delimiter rule on every row, delimiter or not (a generation prefix may hold none yet)."""
        return self._patch(tokens, include_next_token, delimited=True)

    def start_stepper(self, batch: int) -> DelimiterStarts:
        """Cached generation on the delimited stream (the delimiter rule one token at a time)."""
        return DelimiterStarts()

    # --- patching -------------------------------------------------------------------------
    def patch(self, tokens: torch.Tensor, *, include_next_token: bool = False, entropies: torch.Tensor | None = None) -> Patches:
        """``tokens``: ``LongTensor[B, N]`` or ``[N]`` -> lengths ``[B, P]`` (``[P]``), rows sum to N (N + 1).
        A row holding a delimiter follows the delimiter rule, any other row the raw rule."""
        return self._patch(tokens, include_next_token, delimited=None)

    def _patch(self, tokens: torch.Tensor, include_next_token: bool, delimited: bool | None) -> Patches:
        tokens_BN, squeeze = as_batch(tokens)
        B, N = tokens_BN.shape
        n_out = N + int(include_next_token)
        starts = dynamic_prefix(B, n_out, tokens_BN.device)
        special = tokens_BN < OFFSET
        starts[:, 1:n_out] |= special[:, : n_out - 1]  # both rules: a special ends its patch
        raw_B = (tokens_BN != BPE_ID).all(dim=1) if delimited is None else torch.full((B,), not delimited)
        if raw_B.any():
            raw = raw_B.nonzero().flatten()
            starts[raw, :N] |= special[raw]  # raw rule: a special also starts its own patch
            if include_next_token:
                starts[raw, N] = True
            rows, cols = self._token_starts(tokens_BN[raw])
            if rows:
                starts[raw[torch.tensor(rows)], torch.tensor(cols)] = True
        return finish(starts, self.config.max_patch_length, squeeze)

    def _token_starts(self, tokens_BN: torch.Tensor) -> tuple[list[int], list[int]]:
        """(row, position) of every BPE token that is not the first of its segment."""
        rows: list[int] = []
        cols: list[int] = []
        for b, row in enumerate(tokens_BN.tolist()):
            pos = 0
            for is_byte, group in itertools.groupby(row, key=lambda t: t >= OFFSET):
                ids = list(group)
                if is_byte:
                    ends = itertools.accumulate(self.token_byte_lengths(bytes(t - OFFSET for t in ids)))
                    inner = [pos + e for e in ends][:-1]
                    rows += [b] * len(inner)
                    cols += inner
                pos += len(ids)
        return rows, cols


class DelimiterStarts:
    """Generation on the delimited stream: position t + 1 starts a patch iff token t is a special
    (delimiter, pad, BOS, EOS), and always when t is the first token of its document (the dynamic
    prefix of a document patched alone)."""

    def __init__(self) -> None:
        from blt.generate.documents import DocumentClock

        self.clock = DocumentClock()

    def snapshot(self) -> tuple:
        return self.clock.snapshot()

    def restore(self, mark: tuple) -> None:
        self.clock.restore(mark)

    def step(self, tokens_B: torch.Tensor, t: int) -> torch.Tensor:
        return torch.tensor(self.step_values(tokens_B.tolist(), t), dtype=torch.bool, device=tokens_B.device)

    def step_values(self, tokens: list[int], t: int) -> list[bool]:
        """:meth:`step` on Python values."""
        return [token < OFFSET or n == 0 for token, n in zip(tokens, self.clock.local_values(tokens, t))]


@hookimpl
def blt_register_patchers():
    return [PatcherSpec(name="bpe", config_type=BpeConfig, build=BpePatcher, incremental=False,
                        summary="byte-level BPE pieces (tokenizers library), each closed by a delimiter the model predicts")]
