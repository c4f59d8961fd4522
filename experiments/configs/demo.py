r"""`make demo`: the demo model, gqn_jax/configs/demo.py, as experiments/demo.sh trains it.

  python -m gqn_jax.train --config=experiments/configs/demo.py --workdir=runs/demo

The demo model was sized on 2 shared CPU cores: 64 -> 32 core and canvas channels and 128 -> 64
channels of r shorten the step, and 1600 steps keep `make demo` short (experiments/README.md,
"The demo", has the measured step and stage times). Its recipe comes from the ablation
(experiments/results/ablation.md).
Data: 1200 + 100 generated rooms_ring_camera scenes, built by experiments/demo.sh into
data/tfds/demo. The pictures show context views | true query view | reconstruction | prior
samples; experiments/demo.sh then shows the shipped reference model's predictions on the
same held-out scenes.
"""

from gqn_jax.configs import demo


def get_config():
  return demo.get_config()
