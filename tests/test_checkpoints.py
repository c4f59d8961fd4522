"""Checkpoints: what is kept, what a mismatched config says, the inference contract, and an
exact resume after SIGKILL."""

import os
import signal
import subprocess
import time

import jax
import ml_collections
import numpy as np
import pytest

import _data_builder
import _train_tiny_config
from _train_synthetic import PYTHON, REPO, subprocess_env
from gqn_jax import checkpoints
from gqn_jax import config as config_lib
from gqn_jax import parallel
from gqn_jax import train_step as ts
from gqn_jax.model import GQN


def _state(config, seed=0):
  model = GQN(config_lib.model_config(config.model))
  return ts.create_train_state(model, config_lib.optim_config(config.optim),
                               jax.random.key(seed))


def _abstract(config):
  model = GQN(config_lib.model_config(config.model))
  sharding = parallel.replicated(parallel.data_mesh(jax.devices()[:1]))
  return checkpoints.abstract_state(model, config_lib.optim_config(config.optim), sharding)


def _save(workdir, config, steps, **options):
  checkpointer = checkpoints.Checkpointer(workdir, **options)
  state = _state(config)
  for step, eval_loss in steps:
    checkpointer.save(step, state.replace(step=jax.numpy.asarray(step, jax.numpy.int32)),
                      config, eval_loss=eval_loss)
  checkpointer.wait_until_finished()
  return checkpointer, state


def test_incompatible_config_names_the_fields(tmp_path):
  config = _train_tiny_config.get_config()
  _save(tmp_path, config, [(5, None)])[0].close()
  other = _train_tiny_config.get_config()
  other.model.hidden_channels = 16
  other.model.representation = "pool"
  other.optim.lr_initial = 1e-4      # optimizer settings may change between runs.
  other.train.batch_size = 8
  checkpointer = checkpoints.Checkpointer(tmp_path)
  with pytest.raises(checkpoints.IncompatibleCheckpointError) as error:
    checkpointer.restore(5, _abstract(other), other)
  message = str(error.value)
  assert "config.model.hidden_channels: checkpoint 8, this run 16" in message
  assert "config.model.representation: checkpoint 'tower', this run 'pool'" in message
  assert "lr_initial" not in message and "batch_size" not in message
  # The same run, with only those compatible changes, restores.
  compatible = _train_tiny_config.get_config()
  compatible.optim.lr_initial, compatible.model.remat = 1e-4, True
  assert int(checkpointer.restore(5, _abstract(compatible), compatible).step) == 5
  checkpointer.close()


@pytest.mark.parametrize("field", ["view_attention", "pose_rays"])
def test_options_that_add_parameters_must_match(tmp_path, field):
  """view_attention and pose_rays change the parameter tree: a run with the other setting is
  another model (and so is a shipped model for config.train.init_from)."""
  config = _train_tiny_config.get_config()
  _save(tmp_path, config, [(1, None)])[0].close()
  other = _train_tiny_config.get_config()
  other.model[field] = True
  checkpointer = checkpoints.Checkpointer(tmp_path)
  with pytest.raises(checkpoints.IncompatibleCheckpointError,
                     match=f"config.model.{field}: checkpoint False, this run True"):
    checkpointer.restore(1, _abstract(other), other)
  checkpointer.close()
  with pytest.raises(checkpoints.IncompatibleCheckpointError, match=f"config.model.{field}"):
    checkpoints.params_to_start_from(tmp_path, other)


def test_a_config_written_before_a_model_field_existed_reads_as_its_default():
  """Shipped models' configs lack fields added since (view_attention, pose_rays): those are
  the defaults, so the config still matches the model it describes."""
  old = checkpoints.config_to_dict(_train_tiny_config.get_config())
  del old["model"]["view_attention"], old["model"]["pose_rays"]
  assert checkpoints.config_mismatches(old, _train_tiny_config.get_config()) == []
  newer = _train_tiny_config.get_config()
  newer.model.view_attention = True
  assert checkpoints.config_mismatches(old, newer) == [
      "config.model.view_attention: checkpoint False, this run True"]


def test_clipping_on_or_off_must_match(tmp_path):
  config = _train_tiny_config.get_config()
  _save(tmp_path, config, [(1, None)])[0].close()
  clipped = _train_tiny_config.get_config()
  clipped.optim.grad_clip_norm = 1.0
  checkpointer = checkpoints.Checkpointer(tmp_path)
  with pytest.raises(checkpoints.IncompatibleCheckpointError, match="optim.grad_clip_norm"):
    checkpointer.restore(1, _abstract(clipped), clipped)
  checkpointer.close()


def test_keeps_the_last_k_the_best_and_every_nth(tmp_path):
  config = _train_tiny_config.get_config()
  history = [(1, None), (2, 10.0), (3, None), (4, 30.0), (5, None), (6, 20.0)]
  checkpointer, _ = _save(tmp_path, config, history, max_to_keep=2, keep_best=True)
  assert sorted(checkpointer.all_steps()) == [2, 5, 6]  # best eval loss 10.0, then the last 2.
  checkpointer.close()
  checkpointer, _ = _save(tmp_path / "no_best", config, history, max_to_keep=2)
  assert sorted(checkpointer.all_steps()) == [5, 6]
  checkpointer.close()
  checkpointer, _ = _save(tmp_path / "every_2", config, history, max_to_keep=1, keep_every=2)
  assert sorted(checkpointer.all_steps()) == [2, 4, 6]  # the multiples of 2, and the last.
  checkpointer.close()
  checkpointer, _ = _save(tmp_path / "every_4", config, history, max_to_keep=1, keep_every=4)
  assert sorted(checkpointer.all_steps()) == [4, 6]
  checkpointer.close()


def test_load_for_inference_contract(tmp_path, monkeypatch):
  config = _train_tiny_config.get_config()
  monkeypatch.chdir(tmp_path.parent)  # a relative workdir, as on the command line.
  checkpointer, state = _save(tmp_path.name, config, [(3, None), (7, None)])
  checkpointer.close()
  loaded_config, params = checkpoints.load_for_inference(tmp_path.name)
  assert isinstance(loaded_config, ml_collections.ConfigDict)
  assert loaded_config.model.to_dict() == config.model.to_dict()
  assert loaded_config.train.batch_size == config.train.batch_size
  for loaded, saved in zip(jax.tree.leaves(params), jax.tree.leaves(state.params)):
    assert loaded.sharding.device_set == {jax.local_devices()[0]}
    np.testing.assert_array_equal(loaded, saved)
  assert jax.tree.structure(params) == jax.tree.structure(state.params)
  checkpoints.load_for_inference(tmp_path, step=3)
  with pytest.raises(checkpoints.CheckpointNotFoundError, match=r"step 4 .* steps \[3, 7\]"):
    checkpoints.load_for_inference(tmp_path, step=4)


def test_load_for_inference_without_checkpoint(tmp_path):
  with pytest.raises(checkpoints.CheckpointNotFoundError, match=str(tmp_path / "empty")):
    checkpoints.load_for_inference(tmp_path / "empty")
  (tmp_path / "bare" / "checkpoints").mkdir(parents=True)
  with pytest.raises(checkpoints.CheckpointNotFoundError, match="no complete checkpoint"):
    checkpoints.load_for_inference(tmp_path / "bare")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  """A prepared TFDS dataset of hand-written scenes (tests/_data_builder.py)."""
  data_dir, _, _ = _data_builder.prepared(tmp_path_factory)
  return data_dir


def _train_command(workdir, data_dir, *overrides):
  return [PYTHON, "-m", "gqn_jax.train", "--config=tests/_train_tiny_config.py",
          f"--workdir={workdir}", f"--config.data.data_dir={data_dir}",
          "--config.data.dataset=rooms_ring_camera", "--config.train.num_steps=24",
          *overrides]


@pytest.mark.slow
def test_sigkill_then_restart_reaches_the_same_parameters(tmp_path, dataset):
  """A run killed with SIGKILL at an arbitrary step and started again by the same command
  ends with the same parameters, bit for bit, as a run that was never interrupted.

  The killed run saves every step, so the kill usually lands during an asynchronous save and
  leaves a partial checkpoint behind, which the restart must ignore.
  """
  env = subprocess_env(cache_dir=tmp_path / "compilation_cache")
  log = lambda name: open(tmp_path / f"{name}.log", "w")  # pylint: disable=consider-using-with
  reference = subprocess.Popen(
      _train_command(tmp_path / "reference", dataset, "--config.train.checkpoint_every_steps=24"),
      env=env, cwd=REPO, stdout=log("reference"), stderr=subprocess.STDOUT)
  every_step = "--config.train.checkpoint_every_steps=1"
  command = _train_command(tmp_path / "resumed", dataset, every_step)
  killed = subprocess.Popen(command, env=env, cwd=REPO, stdout=log("killed"),
                            stderr=subprocess.STDOUT)
  checkpoint_dir = tmp_path / "resumed" / "checkpoints"
  try:
    deadline = time.monotonic() + 400
    while not (checkpoint_dir / "6").exists() and killed.poll() is None:
      assert time.monotonic() < deadline, "no checkpoint of step 6 in time"
      time.sleep(0.02)
    os.kill(killed.pid, signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    steps = [int(p.name) for p in checkpoint_dir.iterdir() if p.name.isdigit()]
    assert 6 <= max(steps) < 24
    restart = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True,
                             timeout=400, check=False)
    assert restart.returncode == 0, restart.stderr[-4000:]
    assert f"restored {checkpoint_dir}/" in restart.stderr
    assert reference.wait(timeout=400) == 0, (tmp_path / "reference.log").read_text()[-4000:]
  finally:
    for process in (reference, killed):
      if process.poll() is None:
        process.kill()
  _, expected = checkpoints.load_for_inference(tmp_path / "reference", step=24)
  _, resumed = checkpoints.load_for_inference(tmp_path / "resumed", step=24)
  assert jax.tree.structure(resumed) == jax.tree.structure(expected)
  for (path, value), other in zip(jax.tree_util.tree_flatten_with_path(expected)[0],
                                  jax.tree.leaves(resumed)):
    np.testing.assert_array_equal(other, value, err_msg=jax.tree_util.keystr(path))
