"""A small model that learns generated rooms within minutes on a 2-core CPU (`make demo`).

The reference recipe (gqn_jax/configs/reference.py) cut to the demo's 1600 steps: 32 px
images, the tower representation, L = 6 unshared cores of 32 channels, a final pixel sigma of
0.1 reached after 1,000 steps, and r weighted over the context views for each query
(model.view_attention), with each query cell attending over every view's cells and each view's
pixels in r (model.attention_over, model.r_pixels). In the ablation
(experiments/results/ablation.md, 1500-step runs) the first settings reconstruct the target best
(posterior PSNR), and the view weighting is what makes the prediction depend on the query pose;
at the paper's sigma of 0.7 the model learnt wall and floor colours and no objects. The
reference configs' floor under each step's KL (optim.free_nats_per_step) is left out: at 1,500
steps it moved the posterior, not the prediction (rows reference, reference_free1).
"""

import ml_collections

from gqn_jax.configs import paper


def get_config() -> ml_collections.ConfigDict:
  config = paper.get_config()
  config.model.update(
      image_size=32, representation="tower", r_channels=64, steps=6,
      hidden_channels=32, canvas_channels=32, latent_channels=3, view_attention=True,
      attention_over="cells", r_pixels=True)
  config.optim.update(sigma_final=0.1, sigma_anneal_steps=1_000, lr_anneal_steps=4_000)
  config.train.update(
      batch_size=16, num_steps=1_600, log_every_steps=50, checkpoint_every_steps=400,
      keep_checkpoints=2, eval_every_steps=400, eval_batches=4, image_every_steps=400,
      image_scenes=6, prior_samples=4)
  config.data.update(dataset="generated_rooms_ring_camera", max_context_views=5,
                     data_dir="data/tfds/demo")
  return config
