r"""The reference model, trained on from the shipped weights for as many steps as time allows.

  python -m gqn_jax.train --config=gqn_jax/configs/reference_continued.py \
      --workdir=runs/reference_continued

Goes on from the shipped model's parameters (pretrained/rooms_ring_camera_32px, a full run of
gqn_jax/configs/reference.py; config.train.init_from) with the same model and data, at the
paper's learning rate instead of the short run's anneal: in the paper the rate is still above
4.5e-4 at 100k steps. The optimizer starts afresh, so the rate first ramps up from the value
the shipped run ended at. num_steps is a ceiling, not a plan: stop the run with SIGTERM and
rerun the command to go on exactly.

experiments/results/reference_continued.md is such a run from the previous shipped model, which
summed the views (before model.view_attention): more steps of that recipe did not make its
prediction use the pose.
"""

import ml_collections

from gqn_jax.configs import reference


def get_config() -> ml_collections.ConfigDict:
  config = reference.get_config()
  config.optim.update(
      # The shipped run ended at sigma 0.1; no second anneal.
      sigma_initial=0.1, sigma_final=0.1, sigma_anneal_steps=1,
      # 5e-5 (where the shipped run ended) up to the paper's 5e-4 over 1,000 steps, then
      # constant: a fresh Adam's first updates are large, so they start small.
      lr_initial=5e-5, lr_final=5e-4, lr_anneal_steps=1_000)
  config.train.update(
      init_from="pretrained/rooms_ring_camera_32px",
      # Another seed than the shipped run's: other latent noise and another order of scenes.
      seed=1,
      num_steps=200_000, checkpoint_every_steps=1_000, keep_checkpoints=2,
      eval_every_steps=2_000, image_every_steps=4_000)
  return config
