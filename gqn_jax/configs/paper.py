"""The paper's configuration (Eslami et al. 2018; GQN_SPEC.md): 64 px, tower, L = 12.

  python -m gqn_jax.summary --config=gqn_jax/configs/paper.py
Variants override fields on the command line, e.g. ``--config.model.representation=pool``.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  config.model = ml_collections.ConfigDict(dict(
      image_size=64,            # pixels per side.
      representation="tower",   # pyramid | tower | pool; the paper: tower learns fastest.
      r_channels=256,           # channels of r.
      steps=12,                 # L, generator steps.
      hidden_channels=128,      # ConvLSTM state channels.
      canvas_channels=128,      # channels of the canvas u.
      latent_channels=3,        # channels of each z_l (16x16x3).
      kernel_size=5,            # core and head kernels.
      share_cores=False,        # the paper: a core per step.
      pose_order="sin_cos",     # DeepMind's reader: (x, y, z, sin yaw, cos yaw, sin pitch, cos pitch).
      conv_backend="auto",      # auto | xla | explicit_vjp | im2col: speed only, same values;
                                # auto = im2col on CPU, xla on GPU/TPU
                                # (gqn_jax/layers.py).
      scan_unroll=1,            # generator steps per scan iteration.
      remat=False,              # recompute generator steps and the representation network in
                                # the backward pass (saves memory).
      dtype="float32",          # compute dtype; parameters stay float32.
  ))

  config.optim = ml_collections.ConfigDict(dict(
      lr_initial=5e-4,          # mu_i
      lr_final=5e-5,            # mu_f
      lr_anneal_steps=1_600_000,
      sigma_initial=2.0,        # pixel standard deviation at step 0.
      sigma_final=0.7,
      sigma_anneal_steps=200_000,
      adam_b1=0.9,
      adam_b2=0.999,
      adam_eps=1e-8,
      grad_clip_norm=0.0,       # 0: no clipping, as in the paper.
  ))

  config.train = ml_collections.ConfigDict(dict(
      batch_size=36,            # scenes per step, over all devices and processes.
      num_steps=2_000_000,      # optimizer steps of the whole run (resumed runs included).
      seed=0,                   # initial parameters, latent noise and data order.
      log_every_steps=100,      # mean train metrics to TensorBoard.
      checkpoint_every_steps=1_000,
      keep_checkpoints=3,       # the last this many checkpoints are kept...
      keep_best_checkpoint=True,  # ...and the one of lowest eval loss.
      eval_every_steps=5_000,   # 0: never.
      eval_batches=8,           # test batches per evaluation.
      eval_batch_size=0,        # 0: batch_size.
      image_every_steps=5_000,  # context | query | reconstruction | prior samples; 0: never.
      image_scenes=4,           # rows of that picture.
      prior_samples=3,          # prior samples per row.
      progress_bar=True,
  ))

  config.data = ml_collections.ConfigDict(dict(
      dataset="rooms_ring_camera",  # a released name, or generated_<name> for generated scenes.
      max_context_views=5,      # K; M ~ U{1..K} per batch (5 rooms, 7 jaco, 20 mazes, 14 SM).
      data_dir="data/tfds",     # where `tfds build data/gqn` wrote the dataset.
      train_split="train",      # a TFDS split expression, e.g. "train[:1200]" for fewer scenes.
      eval_split="test",
      worker_count=0,           # grain decoding processes; 0 decodes in threads.
  ))
  return config
