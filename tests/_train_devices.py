"""Subprocess of tests/test_parallel.py: the data-parallel step on 8 devices vs 1 device.

Run with 8 simulated CPU devices (XLA_FLAGS, set by the caller before JAX starts). Takes two
steps on the same global batches with the train step program (train_step.make_train_step) on
a one-device mesh and on a mesh of all 8 devices, prints the largest differences as JSON, and
saves the 8-device state (a checkpoint and a .npz of its parameters) in argv[1] for the test
that restores it onto one device, and reads that checkpoint back under the 8-device mesh.
"""

import json
import pathlib
import sys

import jax
import numpy as np

import _train_synthetic
from gqn_jax import checkpoints
from gqn_jax import config as config_lib
from gqn_jax import parallel
from gqn_jax import train_step as ts
from gqn_jax.configs import tiny
from gqn_jax.model import GQN

STEPS = 2


def main(workdir: pathlib.Path):
  assert jax.device_count() == 8, jax.devices()
  config = tiny.get_config()
  model_cfg = config_lib.model_config(config.model)
  optim_cfg = config_lib.optim_config(config.optim)
  model = GQN(model_cfg)
  batches = [_train_synthetic.global_batch(i, 8, model_cfg.image_size, 3) for i in range(STEPS)]
  rng = jax.random.key(1)

  single = ts.create_train_state(model, optim_cfg, jax.random.key(0))
  single_step = ts.make_train_step(model, optim_cfg, parallel.data_mesh(jax.devices()[:1]))
  single_metrics = []
  for batch in batches:
    single, metrics = single_step(single, batch, rng)
    single_metrics.append(jax.device_get(metrics))

  mesh = parallel.data_mesh()
  with jax.set_mesh(mesh):
    state = parallel.replicate(ts.create_train_state(model, optim_cfg, jax.random.key(0)), mesh)
    step = ts.make_train_step(model, optim_cfg, mesh)
    sharded_metrics = []
    for batch in batches:
      state, metrics = step(state, parallel.shard_batch(batch, mesh), parallel.replicate(rng, mesh))
      sharded_metrics.append(jax.device_get(metrics))

  def max_difference(a, b):
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

  report = {
      "param_max_abs_diff": max_difference(single.params, state.params),
      "param_max_abs": max(float(np.max(np.abs(x))) for x in jax.tree.leaves(single.params)),
      "opt_state_max_abs_diff": max_difference(single.opt_state, state.opt_state),
      "metrics": [{k: [float(np.asarray(a[k]).ravel()[0]), float(np.asarray(b[k]).ravel()[0])]
                   for k in ("loss", "nll", "kl", "grad_norm", "update_norm", "param_norm")}
                  for a, b in zip(single_metrics, sharded_metrics)],
      "shardings": sorted({str(x.sharding.spec) for x in jax.tree.leaves(state.params)}),
      "devices": len(state.params["generator"]["prior"]["kernel"].sharding.device_set),
  }
  checkpointer = checkpoints.Checkpointer(workdir)
  checkpointer.save(STEPS, state, config)
  checkpointer.wait_until_finished()
  checkpointer.close()
  # Loading a run for inference under an 8-device mesh, as training with train.init_from does.
  with jax.set_mesh(mesh):
    started = checkpoints.params_to_start_from(workdir, config)
  report["init_from_max_abs_diff"] = max_difference(started, state.params)
  np.savez(workdir / "params.npz", **{jax.tree_util.keystr(path): np.asarray(x) for path, x in
                                      jax.tree_util.tree_flatten_with_path(state.params)[0]})
  print("RESULT " + json.dumps(report))


if __name__ == "__main__":
  main(pathlib.Path(sys.argv[1]))
