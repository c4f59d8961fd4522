"""Data parallelism: 8 devices step as 1 does, processes train in lockstep, checkpoints move
between device counts.

Simulated devices and processes need a fresh JAX, so each case runs in a subprocess
(tests/_train_devices.py, tests/_train_processes.py).
"""

import json
import subprocess

import jax
import numpy as np
import pytest

import _train_synthetic
import _train_tiny_config
from _train_synthetic import PYTHON, REPO, subprocess_env
from gqn_jax import checkpoints
from gqn_jax import config as config_lib
from gqn_jax import parallel
from gqn_jax.configs import tiny
from gqn_jax.model import GQN

TIMEOUT = 600


def _run(args, env, name):
  process = subprocess.run([PYTHON] + args, env=env, cwd=REPO, capture_output=True, text=True,
                           timeout=TIMEOUT, check=False)
  assert process.returncode == 0, f"{name} failed:\n{process.stderr[-4000:]}"
  return process


def _npz(path) -> dict[str, np.ndarray]:
  with np.load(path) as stored:
    return dict(stored)


@pytest.fixture(scope="module")
def eight_device_run(tmp_path_factory):
  """(workdir with the 8-device state's checkpoint and params.npz, the comparison report)."""
  workdir = tmp_path_factory.mktemp("eight_devices")
  process = _run(["tests/_train_devices.py", str(workdir)], subprocess_env(devices=8),
                 "8-device run")
  line = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")][-1]
  return workdir, json.loads(line.removeprefix("RESULT "))


@pytest.mark.slow
def test_eight_device_step_equals_one_device_step(eight_device_run):
  """Two steps on one global batch of 8 scenes: sharded 8 ways, or whole on one device.

  Losses and gradients (Adam's moments) agree to float rounding. Parameters agree to a small
  fraction of the learning rate, not to rounding: Adam's first update is lr * g / (|g| + eps),
  which turns rounding differences in gradients near zero into differences up to lr.
  """
  _, report = eight_device_run
  assert report["devices"] == 8
  assert report["shardings"] == sorted({str(jax.sharding.PartitionSpec(*[None] * rank))
                                        for rank in (1, 2, 4, 5)})  # replicated everywhere.
  for step in report["metrics"]:
    for name, (single, sharded) in step.items():
      np.testing.assert_allclose(sharded, single, rtol=2e-6, err_msg=name)
  assert report["opt_state_max_abs_diff"] < 1e-5
  learning_rate = tiny.get_config().optim.lr_initial
  assert report["param_max_abs_diff"] < 0.05 * learning_rate, report
  # train.init_from reads another run's parameters under the run's own 8-device mesh.
  assert report["init_from_max_abs_diff"] == 0.0


@pytest.mark.slow  # its fixture runs the 8-device subprocess.
def test_restore_onto_another_device_count(eight_device_run):
  """A state saved from 8 devices restores onto this process's single device, bit for bit."""
  workdir, _ = eight_device_run
  config = tiny.get_config()
  model = GQN(config_lib.model_config(config.model))
  optim_cfg = config_lib.optim_config(config.optim)
  mesh = parallel.data_mesh(jax.devices()[:1])
  checkpointer = checkpoints.Checkpointer(workdir)
  abstract = checkpoints.abstract_state(model, optim_cfg, parallel.replicated(mesh))
  state = checkpointer.restore(checkpointer.latest_step(), abstract, config)
  checkpointer.close()
  expected = _npz(workdir / "params.npz")
  restored = {jax.tree_util.keystr(path): x
              for path, x in jax.tree_util.tree_flatten_with_path(state.params)[0]}
  assert restored.keys() == expected.keys()
  for name, value in restored.items():
    assert value.sharding.device_set == {jax.devices()[0]}
    np.testing.assert_array_equal(value, expected[name], err_msg=name)
  _, params = checkpoints.load_for_inference(workdir)
  for path, value in jax.tree_util.tree_flatten_with_path(params)[0]:
    np.testing.assert_array_equal(value, expected[jax.tree_util.keystr(path)])


@pytest.mark.slow
def test_two_processes_train_in_lockstep(tmp_path):
  """Two processes (gloo collectives on localhost) run train_and_evaluate on their halves of
  the same global batches: both end with the same parameters, equal to a one-process run's.
  """
  port = _train_synthetic.free_port()
  _train_synthetic.train_processes(
      [(tmp_path / "two", tmp_path / f"process{i}.npz", i, 2, port, 3, "all") for i in range(2)]
      + [(tmp_path / "one", tmp_path / "single.npz", 0, 1, 0, 3, "all")], timeout=TIMEOUT)
  first, second, single = (_npz(tmp_path / f"{name}.npz")
                           for name in ("process0", "process1", "single"))
  learning_rate = tiny.get_config().optim.lr_initial
  for name in first:
    np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    # As in the 8-device test: Adam turns rounding in near-zero gradients into up to ~lr.
    np.testing.assert_allclose(first[name], single[name], rtol=0, atol=0.05 * learning_rate,
                               err_msg=name)
  # Both processes wrote one checkpoint together, with each one's data-iterator state.
  data = sorted(p.name for p in (tmp_path / "two" / "checkpoints" / "3" / "data").iterdir())
  assert [name for name in data if name.endswith(".json")] == [
      "process_0-of-2.json", "process_1-of-2.json"]
  assert list((tmp_path / "two" / "images").iterdir())  # process 0 drew the pictures.


def test_global_batch_must_split_over_the_devices():
  class FakeMesh:
    class devices:  # pylint: disable=invalid-name
      size = 8
  parallel.check_batch_size(16, FakeMesh)
  with pytest.raises(ValueError, match=r"config.train.batch_size=12 .* 8 devices"):
    parallel.check_batch_size(12, FakeMesh)


def test_synthetic_batches_split_by_process():
  """The test data's contract: process p's rows are rows [pB/P, (p+1)B/P) of the global batch."""
  config = _train_tiny_config.get_config()
  whole = next(iter(_train_synthetic.data(config).train))
  halves = [next(iter(_train_synthetic.data(config, p, 2).train)) for p in range(2)]
  for name, value in whole.items():
    np.testing.assert_array_equal(np.concatenate([h[name] for h in halves]), value)
