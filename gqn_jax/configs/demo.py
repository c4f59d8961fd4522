"""A small model that learns generated rooms within minutes on a 2-core CPU (`make demo`).

32 px images, pool representation, L = 6 unshared cores of 64 channels, and annealing schedules
shortened to the demo's length.
"""

import ml_collections

from gqn_jax.configs import paper


def get_config() -> ml_collections.ConfigDict:
  config = paper.get_config()
  config.model.update(
      image_size=32, representation="pool", r_channels=128, steps=6,
      hidden_channels=64, canvas_channels=64, latent_channels=3)
  config.optim.update(lr_anneal_steps=4_000, sigma_anneal_steps=1_000)
  config.train.update(batch_size=16, num_steps=2_000)
  config.data.update(dataset="generated_rooms_ring_camera", max_context_views=5)
  return config
