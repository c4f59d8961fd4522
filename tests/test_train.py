"""The training loop end to end: what a run writes, resuming, and stopping on a bad loss."""

import json

import jax
import numpy as np
import optax
import pytest
from PIL import Image
from tensorboard.backend.event_processing import event_file_loader

import _data_builder
import _train_synthetic
import _train_tiny_config
from gqn_jax import checkpoints
from gqn_jax import config as config_lib
from gqn_jax import logging_utils
from gqn_jax import trainer


def read_events(directory):
  """({(tag, step)} of the scalars, [(height, width)] of the images) in the event files.

  clu writes them with tf.summary: every value a tensor, its plugin naming the kind; an image is
  the string tensor [width, height, PNG].
  """
  scalars, images = set(), []
  for path in sorted(directory.glob("events.out.tfevents.*")):
    for event in event_file_loader.EventFileLoader(str(path)).Load():
      for value in event.summary.value:
        plugin = value.metadata.plugin_data.plugin_name
        if plugin == "scalars":
          scalars.add((value.tag, event.step))
        elif plugin == "images":
          width, height = value.tensor.string_val[:2]
          images.append((int(height), int(width)))
  return scalars, images


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  data_dir, _, _ = _data_builder.prepared(tmp_path_factory)
  return data_dir


def test_end_to_end_run_writes_events_config_checkpoint_and_picture(tmp_path, dataset):
  config = _train_tiny_config.get_config()
  config.data.update(dataset="rooms_ring_camera", data_dir=str(dataset))
  config.train.update(num_steps=4, log_every_steps=2, checkpoint_every_steps=4,
                      eval_every_steps=4, eval_batches=2, image_every_steps=4)
  result = trainer.train_and_evaluate(config, tmp_path)
  assert result["step"] == 4 and np.isfinite(result["train"]["loss"])
  assert np.isfinite(result["eval"]["loss"]) and result["steps_per_second"] > 0

  scalars, images = read_events(tmp_path / "tensorboard")
  for tag in ("train/loss", "train/nll", "train/kl", "train/sigma", "train/learning_rate",
              "train/grad_norm", "train/param_norm", "train/update_norm", "train/kl_per_step/1",
              "train/kl_per_step/3", "perf/steps_per_second", "perf/scenes_per_second"):
    assert (tag, 4) in scalars, tag
  assert ("train/loss", 2) in scalars and ("eval/loss", 4) in scalars
  assert len(images) == 1

  # The picture: a row per scene of its 3 context views | query, reconstruction, 1 prior sample.
  picture = np.asarray(Image.open(result["image"]))
  size = config.model.image_size + logging_utils.SEPARATOR_PIXELS
  gap = 3 * logging_utils.SEPARATOR_PIXELS
  assert picture.shape == (2 * size, 6 * size + gap, 3)
  assert images[0] == picture.shape[:2]

  assert json.loads((tmp_path / "config.json").read_text()) == json.loads(
      config.to_json_best_effort())
  loaded_config, params = checkpoints.load_for_inference(tmp_path)
  assert loaded_config.to_dict() == json.loads(config.to_json_best_effort())
  for loaded, final in zip(jax.tree.leaves(params), jax.tree.leaves(result["state"].params)):
    np.testing.assert_array_equal(loaded, final)

  # Started again, the run finds itself finished.
  again = trainer.train_and_evaluate(config, tmp_path)
  assert again["step"] == 4 and again["train"] is None


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
  """A learning rate of 1e38 makes the parameters huge after one update and the loss
  non-finite soon after; the run must stop naming that step, and save nothing after it."""
  config = _train_tiny_config.get_config()
  config.optim.update(lr_initial=1e38, lr_final=1e38)
  config.train.update(num_steps=6, checkpoint_every_steps=1)
  with pytest.raises(trainer.NonFiniteLossError) as error:
    trainer.train_and_evaluate(config, tmp_path, data=_train_synthetic.data(config))
  message = str(error.value)
  step = int(message.split("at step ")[1].split()[0])
  assert 1 < step <= 6
  checkpointer = checkpoints.Checkpointer(tmp_path)
  assert checkpointer.latest_step() == step - 1
  assert f"last good checkpoint is step {step - 1}" in message
  checkpointer.close()


def test_init_from_starts_from_another_runs_parameters_with_a_fresh_optimizer(tmp_path):
  source = _train_tiny_config.get_config()
  source.train.update(num_steps=2, checkpoint_every_steps=2)
  trained = trainer.train_and_evaluate(source, tmp_path / "source",
                                       data=_train_synthetic.data(source))["state"]

  # With a learning rate of 1e-30 one Adam update moves no parameter visibly, so the run's
  # parameters after its first step are those it started from.
  config = _train_tiny_config.get_config()
  config.optim.update(lr_initial=1e-30, lr_final=1e-30)
  config.train.update(num_steps=1, checkpoint_every_steps=1, init_from=str(tmp_path / "source"))
  started = trainer.train_and_evaluate(config, tmp_path / "started",
                                       data=_train_synthetic.data(config))["state"]
  for got, want in zip(jax.tree.leaves(started.params), jax.tree.leaves(trained.params)):
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-20)
  assert int(started.step) == 1
  counts = optax.tree_utils.tree_get_all_with_path(started.opt_state, "count")
  assert counts and all(int(count) == 1 for _, count in counts)  # Adam afresh.
  config.train.init_from = ""
  fresh = trainer.train_and_evaluate(config, tmp_path / "fresh",
                                     data=_train_synthetic.data(config))["state"]
  assert not np.allclose(jax.tree.leaves(fresh.params)[0], jax.tree.leaves(trained.params)[0])

  # A workdir with a checkpoint of its own resumes it: init_from is not read again.
  config.train.update(num_steps=2, init_from=str(tmp_path / "nowhere"))
  resumed = trainer.train_and_evaluate(config, tmp_path / "started",
                                       data=_train_synthetic.data(config))
  assert resumed["step"] == 2

  with pytest.raises(FileNotFoundError, match="config.train.init_from=.*nowhere"):
    trainer.train_and_evaluate(config, tmp_path / "other", data=_train_synthetic.data(config))
  config.train.init_from = str(tmp_path / "source")
  config.model.hidden_channels += 8
  with pytest.raises(checkpoints.IncompatibleCheckpointError,
                     match="source: its step 2 is another model(.|\n)*"
                           "config.model.hidden_channels: checkpoint 8, this run 16"):
    trainer.train_and_evaluate(config, tmp_path / "other", data=_train_synthetic.data(config))


def test_train_config_defaults_and_errors():
  config = _train_tiny_config.get_config()
  assert config_lib.train_config(config.train).eval_batch_size == config.train.batch_size
  # A section without the loop's fields gets the defaults.
  assert config_lib.train_config({}).log_every_steps == config_lib.TrainConfig.log_every_steps
  config.train.checkpoint_every_steps = 0
  with pytest.raises(config_lib.ConfigError,
                     match="config.train.checkpoint_every_steps must be a positive"):
    config_lib.train_config(config.train)
  with pytest.raises(config_lib.ConfigError,
                     match="config.train.keep_checkpoint_every_steps must be a non-negative"):
    config_lib.train_config({"keep_checkpoint_every_steps": -1})


def test_scene_grid_layout():
  context = np.ones((2, 3, 4, 4, 3), np.float32)
  mask = np.array([[True, True, False], [True, False, False]])
  query = np.zeros((2, 4, 4, 3), np.float32)
  grid = logging_utils.scene_grid(context, mask, query, [("reconstruction", query)])
  step = 4 + logging_utils.SEPARATOR_PIXELS
  assert grid.shape == (2 * step, 5 * step + 3 * logging_utils.SEPARATOR_PIXELS, 3)
  assert grid[0, 0, 0] == 255 and grid[0, 2 * step, 0] == 64  # a used view; an unused one.
  assert grid[step, step, 0] == 64
