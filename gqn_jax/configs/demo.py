"""A small model that learns generated rooms within minutes on a 2-core CPU (`make demo`).

32 px images, pool representation, L = 6 unshared cores of 32 channels (6.2M parameters, 0.32
CPU-seconds per step of 16 scenes), annealing schedules shortened to the demo's 1600 steps.
Expect a train loss near 1790 nats per image and an eval loss near 1788 (floor at sigma 0.7:
1727); experiments/README.md has the measurements.
"""

import ml_collections

from gqn_jax.configs import paper


def get_config() -> ml_collections.ConfigDict:
  config = paper.get_config()
  config.model.update(
      image_size=32, representation="pool", r_channels=64, steps=6,
      hidden_channels=32, canvas_channels=32, latent_channels=3)
  config.optim.update(lr_anneal_steps=4_000, sigma_anneal_steps=1_000)
  config.train.update(
      batch_size=16, num_steps=1_600, log_every_steps=50, checkpoint_every_steps=400,
      keep_checkpoints=2, eval_every_steps=400, eval_batches=4, image_every_steps=400,
      image_scenes=6, prior_samples=4)
  config.data.update(dataset="generated_rooms_ring_camera", max_context_views=5,
                     data_dir="data/tfds/demo")
  return config
