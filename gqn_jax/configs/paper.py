"""The paper's configuration (Eslami et al. 2018): 64 px, tower, L = 12, batch 36, 2M steps.

  python -m gqn_jax.summary --config=gqn_jax/configs/paper.py

Every value is a default of the typed sections in gqn_jax/config.py (ModelConfig, OptimConfig,
TrainConfig, DataConfig), written there once with its meaning and unit; this file only names
the data. Variants import it and override a few fields (configs/demo.py, configs/tiny.py), or
override them on the command line, e.g. ``--config.model.representation=pool``.
"""

import dataclasses

import ml_collections

from gqn_jax import config as config_lib


def get_config() -> ml_collections.ConfigDict:
  sections = dict(
      model=config_lib.ModelConfig(),
      optim=config_lib.OptimConfig(),
      train=config_lib.TrainConfig(),
      data=config_lib.DataConfig(dataset="rooms_ring_camera", max_context_views=5),
  )
  return ml_collections.ConfigDict(
      {name: dataclasses.asdict(section) for name, section in sections.items()})
