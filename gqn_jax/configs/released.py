"""The paper's model and recipe on one of DeepMind's released datasets, for long runs.

experiments/configs/<dataset>.py is `released.get_config('<dataset>')`: K comes from the
dataset table (gqn_jax/released_format.py), and checkpoints, evaluations and pictures are spaced
for a run of millions of steps.
"""

import ml_collections

from gqn_jax import released_format
from gqn_jax.configs import paper


def get_config(dataset: str) -> ml_collections.ConfigDict:
  if dataset not in released_format.DATASETS:
    raise ValueError(f"unknown released dataset {dataset!r}; known: "
                     f"{sorted(released_format.DATASETS)}")
  config = paper.get_config()
  config.data.update(dataset=dataset, data_dir="data/tfds",
                     max_context_views=released_format.DATASETS[dataset].max_context_views)
  config.train.update(
      log_every_steps=100, checkpoint_every_steps=5_000, keep_checkpoints=3,
      keep_best_checkpoint=True, eval_every_steps=10_000, eval_batches=16,
      image_every_steps=10_000, image_scenes=6, prior_samples=3)
  return config
