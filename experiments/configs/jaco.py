r"""jaco: the paper's model and recipe, K = 7 context views at most.

The paper's networks and recipe: docs/architecture.md ("The paper's networks", "Training
recipe"); the dataset and its K: docs/data.md ("The released datasets").

A Jaco arm and a target sphere in a room (64 px, 11 frames).
Model and optimiser: gqn_jax/configs/paper.py (64 px, tower, L = 12, Adam with the annealed
learning rate and pixel sigma, batch 36, 2M steps). The global batch must split evenly over the
devices: launch scripts round it up (experiments/README.md).

Data, converted once (experiments/README.md, "Data")::

  gsutil -m cp -R gs://gqn-dataset/jaco data/downloads
  .venv/bin/tfds build data/gqn --config=jaco --manual_dir=data/downloads \
      --data_dir=data/tfds --file_format=array_record

Train (rerun the same command to resume)::

  python -m gqn_jax.train --config=experiments/configs/jaco.py \
      --workdir=runs/jaco
"""

from gqn_jax.configs import released


def get_config():
  return released.get_config("jaco")
