r"""`make demo`: the demo model (gqn_jax/configs/demo.py) made to train in ~10 minutes on 2 cores.

  python -m gqn_jax.train --config=experiments/configs/demo.py --workdir=runs/demo

Changes to gqn_jax/configs/demo.py, measured on 2 shared CPU cores (experiments/README.md):
64 -> 32 core and canvas channels and 128 -> 64 channels of r (23.8M -> 6.2M parameters) cut
the step's CPU time 3.2x (1.02 -> 0.32 CPU-seconds per step of 16 scenes), which is what lets
~2000 steps fit.
1600 steps (not 2000) keep `make demo` near 15 minutes on 2 cores busy with other work too.
Data: 1200 + 100 generated rooms_ring_camera scenes, built by experiments/demo.sh into
data/tfds/demo. Expect a train loss near 1790 nats per image (floor at sigma 0.7: 1727) and
an eval loss near 1788 after 1600 steps; the pictures show context views | true query view |
reconstruction | prior samples (experiments/README.md).
"""

from gqn_jax import trainer
from gqn_jax.configs import demo


def get_config():
  config = trainer.with_training_fields(demo.get_config())
  config.model.update(hidden_channels=32, canvas_channels=32, r_channels=64)
  config.train.update(
      num_steps=1_600, log_every_steps=50, checkpoint_every_steps=400, keep_checkpoints=2,
      eval_every_steps=400, eval_batches=4, image_every_steps=400, image_scenes=6,
      prior_samples=4)
  config.data.update(data_dir="data/tfds/demo")
  return config
