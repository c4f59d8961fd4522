"""A tiny model for tests: every code path of the paper model, compiled in seconds.

24 px, not 16: at 16 px the generator's grid (4x4) is smaller than its 5x5 kernels, and XLA's
CPU convolution gradient takes a much slower path for that shape (seen when this config was
chosen; no benchmark or result file records it).
"""

import ml_collections

from gqn_jax.configs import paper


def get_config() -> ml_collections.ConfigDict:
  config = paper.get_config()
  config.model.update(
      image_size=24, representation="tower", r_channels=16, steps=3,
      hidden_channels=8, canvas_channels=8, latent_channels=2)
  config.optim.update(lr_initial=3e-3, lr_final=1e-3, lr_anneal_steps=1_000,
                      sigma_anneal_steps=100)
  config.train.update(batch_size=4, num_steps=20)
  config.data.update(dataset="generated_rooms_ring_camera", max_context_views=3)
  return config
