"""``blt export RUN OUT --format hf|safetensors``: a trained run for Hugging Face, or as blt's own export.

``hf`` writes a directory that ``transformers.BltForCausalLM.from_pretrained(OUT)`` loads with the
same logits (:mod:`blt.interop.export`; needs the ``interop`` extra). ``safetensors`` writes what
``blt train`` writes to ``RUN/export/``: ``model.safetensors`` + the experiment's ``config.json``.
"""

from __future__ import annotations

import argparse

NAME = "export"
HELP = "export a trained run: a Hugging Face BltForCausalLM directory (--format hf) or blt's safetensors export"
DESCRIPTION = (
    "Export the model of RUN (a run directory, its export/ directory or a training checkpoint) to OUT. "
    "--format hf (default) writes config.json + model.safetensors for transformers.BltForCausalLM.from_pretrained, "
    "with the entropy patcher's model when the run patches by entropy; components the port lacks are refused. "
    "--format safetensors writes blt's own export, as blt train does in RUN/export."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run directory, its export/ directory, or a training checkpoint directory")
    parser.add_argument("out", help="directory to write")
    parser.add_argument("--format", choices=("hf", "safetensors"), default="hf",
                        help="hf: a transformers BltForCausalLM directory (default); safetensors: blt's own export")
    parser.add_argument("--cross-documents", action="store_true",
                        help="hf: export a model trained with block_documents = true anyway; the port's attention "
                             "crosses an EOS inside a row, so give it one document per row for the same logits")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from blt.core.errors import InputError

    out = Path(args.out)
    if args.format == "safetensors":
        from blt.train.weights import export_weights, load_trained

        config, _, _, model = load_trained(args.run)
        export_weights(model, config, out)
        print(f"wrote {out} (model.safetensors + config.json, blt's export)")
        return 0

    from blt.generate.checkpoint import load_generator
    from blt.interop import save_hf

    loaded = load_generator(args.run)
    if loaded.config is None:
        raise InputError(f"{args.run} is already a Hugging Face checkpoint; blt export reads blt runs "
                         "(a run directory, its export/ or a training checkpoint)")
    for note in save_hf(loaded.model, loaded.config, loaded.patcher, out, cross_documents=args.cross_documents):
        print(f"note: {note}")
    print(f"wrote {out} (config.json + model.safetensors for transformers.BltForCausalLM.from_pretrained)")
    return 0
