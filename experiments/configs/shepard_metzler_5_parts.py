r"""shepard_metzler_5_parts: the paper's model and recipe, K = 14 context views at most.

The paper's networks and recipe: docs/architecture.md ("The paper's networks", "Training
recipe"); the dataset and its K: docs/data.md ("The released datasets").

Shepard-Metzler objects of 5 cubes (64 px, 15 frames). The paper's K is 15,
but the query must be a 16th distinct frame of 15, so K is 14 (gqn_jax/released_format.py).
Model and optimiser: gqn_jax/configs/paper.py (64 px, tower, L = 12, Adam with the annealed
learning rate and pixel sigma, batch 36, 2M steps). The global batch must split evenly over the
devices: launch scripts round it up (experiments/README.md).

Data, converted once (experiments/README.md, "Data")::

  gsutil -m cp -R gs://gqn-dataset/shepard_metzler_5_parts data/downloads
  .venv/bin/tfds build data/gqn --config=shepard_metzler_5_parts --manual_dir=data/downloads \
      --data_dir=data/tfds --file_format=array_record

Train (rerun the same command to resume)::

  python -m gqn_jax.train --config=experiments/configs/shepard_metzler_5_parts.py \
      --workdir=runs/shepard_metzler_5_parts
"""

from gqn_jax.configs import released


def get_config():
  return released.get_config("shepard_metzler_5_parts")
