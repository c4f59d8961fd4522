"""The tiny model with every field of the training loop, for tests that run gqn_jax.train.

Intervals are short and evaluation and pictures are off; tests turn on what they check with
--config.<field> overrides. data.dataset / data.data_dir must point at a prepared dataset.
"""

from gqn_jax.configs import tiny


def get_config():
  config = tiny.get_config()
  config.train.update(num_steps=8, log_every_steps=2, checkpoint_every_steps=4,
                      keep_checkpoints=3, eval_every_steps=0, eval_batches=1,
                      image_every_steps=0, image_scenes=2, prior_samples=1,
                      progress_bar=False)
  return config
