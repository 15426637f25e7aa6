"""Byte embeddings plus hash n-gram embeddings: the input of every builtin local encoder."""

from __future__ import annotations

import torch
from torch import nn

from blt.model.blocks import trunc_normal_
from blt.model.config import LocalEncoderConfig
from blt.model.hash_embedding import HashNgramEmbedding
from blt.tokens import VOCAB_SIZE


def make_embeddings(config: LocalEncoderConfig, dim: int) -> tuple[nn.Embedding, HashNgramEmbedding | None]:
    """``(embed_tokens [260, dim], hash_embeddings or None)``, initialised (std dim^-0.5)."""
    embed_tokens = nn.Embedding(VOCAB_SIZE, dim)
    trunc_normal_(embed_tokens.weight, dim**-0.5)
    hash_embeddings = None
    if config.hash_functions and config.hash_sizes:
        hash_embeddings = HashNgramEmbedding(dim, config.hash_sizes, config.hash_functions, config.hash_buckets)
        trunc_normal_(hash_embeddings.weight, dim**-0.5)
    return embed_tokens, hash_embeddings


def embed_bytes(tokens_BN: torch.Tensor, embed_tokens: nn.Embedding, hash_embeddings: HashNgramEmbedding | None) -> torch.Tensor:
    """``E_byte[x] + sum of hashed n-gram rows`` -> ``[B, N, D]`` (no scaling, no norm)."""
    x_BND = embed_tokens(tokens_BN)
    if hash_embeddings is not None:
        x_BND = x_BND + hash_embeddings(tokens_BN)
    return x_BND
