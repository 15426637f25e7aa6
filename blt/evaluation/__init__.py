"""Evaluation beyond held-out bits per byte: per-byte scoring, noise robustness, character-level
tasks, and BPB by Unicode script and by corpus source.

Modules: :mod:`~blt.evaluation.score` (``Scorer``: rolling per-byte nats, continuation
log-likelihood), :mod:`~blt.evaluation.noise` (the BLT paper's five perturbations),
:mod:`~blt.evaluation.chars` (CUTE-style multiple-choice tasks), :mod:`~blt.evaluation.scripts`
(Unicode script of a character), :mod:`~blt.evaluation.breakdown` (BPB by script and source),
:mod:`~blt.evaluation.documents` (the documents to evaluate on), :mod:`~blt.evaluation.suites`
(``run_suite``: the ``--suite`` results). Heavy imports happen in the modules, not here.
"""
