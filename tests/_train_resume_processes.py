"""Subprocess of tests/test_faults.py: one process of a run that resumes another's checkpoint.

  python tests/_train_resume_processes.py WORKDIR OUT.npz PROCESS_ID NUM_PROCESSES PORT STEPS

trains the tiny config to STEPS on synthetic global batches (tests/_train_synthetic.py, each
process feeding its rows of every global batch) with a checkpoint every 3 steps, resuming what
WORKDIR holds, whatever number of processes wrote it; saves this process's final parameters to
OUT.npz.
"""

import sys

import jax


def main(workdir, out, process_id: int, num_processes: int, port: int, steps: int):
  from gqn_jax import parallel  # pylint: disable=g-import-not-at-top
  if num_processes > 1:
    parallel.initialize(f"localhost:{port}", num_processes, process_id)
  import numpy as np  # pylint: disable=g-import-not-at-top
  import _train_synthetic  # pylint: disable=g-import-not-at-top
  import _train_tiny_config  # pylint: disable=g-import-not-at-top
  from gqn_jax import trainer  # pylint: disable=g-import-not-at-top
  config = _train_tiny_config.get_config()
  config.train.update(num_steps=steps, checkpoint_every_steps=3)
  data = _train_synthetic.data(config, process_id, num_processes)
  result = trainer.train_and_evaluate(config, workdir, data=data)
  params = jax.device_get(result["state"].params)
  np.savez(out, **{jax.tree_util.keystr(path): x for path, x in
                   jax.tree_util.tree_flatten_with_path(params)[0]})


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7]))
