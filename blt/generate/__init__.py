"""Text generation with a Byte Latent Transformer.

- :func:`generate` / :func:`generate_detailed` (:mod:`blt.generate.api`): greedy or sampled,
  batches of prompts, streaming; cached (incremental patching, KV caches everywhere, constant work
  per byte: :mod:`blt.generate.cached`) or no-cache (the reference's method, the oracle:
  :mod:`blt.generate.nocache`);
- :func:`load_generator` (:mod:`blt.generate.checkpoint`): model, patcher and context from an
  exported run or a converted Hugging Face checkpoint.
"""

from __future__ import annotations

from blt.generate.api import generate, generate_detailed
from blt.generate.checkpoint import LoadedModel, load_generator
from blt.generate.outputs import GenerationResult
from blt.generate.sampling import SamplingParams

__all__ = ["GenerationResult", "LoadedModel", "SamplingParams", "generate", "generate_detailed", "load_generator"]
