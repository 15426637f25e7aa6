"""Training: ``[train]``/``[budget]`` configs, the loop, checkpoints, evaluation and ablations.

Entry points: :func:`blt.train.trainer.train` (one experiment), :func:`blt.ablation.run_ablation`
(matched-compute variants, seeds and grids), :func:`blt.train.weights.load_trained` (a trained model for evaluation).
Nothing heavy is imported here, so the experiment config can name ``TrainConfig`` cheaply.
"""
