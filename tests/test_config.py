"""Config files validate; impossible values fail with the field's name."""

import pytest

from gqn_jax import config as config_lib
from gqn_jax import released_format
from gqn_jax.configs import (demo, paper, reference, reference_continued,
                             reference_shepard_metzler, released, tiny)


@pytest.mark.parametrize("module", [paper, demo, tiny, reference, reference_continued,
                                    reference_shepard_metzler])
def test_shipped_configs_are_valid(module):
  cfg = module.get_config()
  config_lib.model_config(cfg.model)
  config_lib.optim_config(cfg.optim)
  config_lib.train_config(cfg.train)
  config_lib.data_config(cfg.data)


def test_paper_config_matches_spec():
  cfg = paper.get_config()
  model = config_lib.model_config(cfg.model)
  assert (model.image_size, model.steps, model.hidden_channels, model.r_channels,
          model.latent_channels, model.share_cores) == (64, 12, 128, 256, 3, False)
  assert cfg.train.batch_size == 36 and cfg.train.num_steps == 2_000_000


@pytest.mark.parametrize("field,value,message", [
    ("image_size", 30, "config.model.image_size"),
    ("image_size", 4, "config.model.image_size"),
    ("steps", 0, "config.model.steps"),
    ("representation", "resnet", "config.model.representation"),
    ("kernel_size", 4, "config.model.kernel_size"),
    ("pose_order", "xyz", "config.model.pose_order"),
    ("scan_unroll", 13, "config.model.scan_unroll"),
    ("r_channels", 12, "config.model.r_channels"),
    ("attention_over", "patches", "config.model.attention_over"),
    ("attention_over", "cells", "needs model.view_attention"),  # the paper sums the views
])
def test_bad_model_values_name_the_field(field, value, message):
  section = dict(paper.get_config().model)
  section[field] = value
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.model_config(section)


def test_r_pixels_needs_a_grid_r():
  section = dict(paper.get_config().model, representation="pool", r_pixels=True)
  with pytest.raises(config_lib.ConfigError, match="config.model.r_pixels"):
    config_lib.model_config(section)


def test_unknown_field_is_named():
  section = dict(paper.get_config().model, hiden_channels=3)
  with pytest.raises(config_lib.ConfigError, match="hiden_channels"):
    config_lib.model_config(section)


@pytest.mark.parametrize("field,value", [("lr_initial", 0.0), ("sigma_final", -1.0),
                                         ("free_nats_per_step", -1.0),
                                         ("lr_anneal_steps", 0), ("adam_b2", 1.0),
                                         ("grad_clip_norm", -1.0)])
def test_bad_optim_values_name_the_field(field, value):
  section = dict(paper.get_config().optim)
  section[field] = value
  with pytest.raises(config_lib.ConfigError, match=f"config.optim.{field}"):
    config_lib.optim_config(section)


@pytest.mark.parametrize("name", sorted(released_format.DATASETS))
def test_released_configs_take_k_from_the_dataset_table(name):
  cfg = released.get_config(name)
  info = released_format.DATASETS[name]
  assert cfg.data.dataset == name
  assert cfg.data.max_context_views == info.max_context_views < info.frames_per_scene
  config_lib.model_config(cfg.model)


def test_unknown_released_dataset_is_named():
  with pytest.raises(ValueError, match="shepard_metzler_9_parts"):
    released.get_config("shepard_metzler_9_parts")
