r"""`make demo`: the demo model, gqn_jax/configs/demo.py, as experiments/demo.sh trains it.

  python -m gqn_jax.train --config=experiments/configs/demo.py --workdir=runs/demo

The demo model was sized on 2 shared CPU cores (experiments/README.md): 64 -> 32 core and canvas
channels and 128 -> 64 channels of r (23.8M -> 6.2M parameters) cut the step's CPU time 3.2x
(1.02 -> 0.32 CPU-seconds per step of 16 scenes); 1600 steps keep `make demo` near 15 minutes.
Data: 1200 + 100 generated rooms_ring_camera scenes, built by experiments/demo.sh into
data/tfds/demo. Expect a train loss near 1790 nats per image (floor at sigma 0.7: 1727) and
an eval loss near 1788 after 1600 steps; the pictures show context views | true query view |
reconstruction | prior samples (experiments/README.md).
"""

from gqn_jax.configs import demo


def get_config():
  return demo.get_config()
