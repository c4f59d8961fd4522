"""Subprocess of tests/test_parallel.py: one process of a multi-process training run.

  python tests/_train_multiprocess.py WORKDIR OUT.npz PROCESS_ID NUM_PROCESSES PORT

trains the tiny config on synthetic global batches with trainer.train_and_evaluate (with
evaluation, pictures and checkpoints on), each process feeding its own rows of every global
batch, and saves this process's copy of the final parameters to OUT.npz. NUM_PROCESSES=1 is
the single-process reference.
"""

import sys

import jax


def main(workdir, out, process_id: int, num_processes: int, port: int):
  from gqn_jax import parallel  # pylint: disable=g-import-not-at-top
  if num_processes > 1:
    parallel.initialize(f"localhost:{port}", num_processes, process_id)
  import numpy as np  # pylint: disable=g-import-not-at-top
  import _train_synthetic  # pylint: disable=g-import-not-at-top
  import _train_tiny_config  # pylint: disable=g-import-not-at-top
  from gqn_jax import trainer  # pylint: disable=g-import-not-at-top
  assert jax.process_count() == num_processes and jax.process_index() == process_id
  config = _train_tiny_config.get_config()
  config.train.update(num_steps=3, checkpoint_every_steps=3, eval_every_steps=3,
                      image_every_steps=3)
  data = _train_synthetic.data(config, process_id, num_processes)
  result = trainer.train_and_evaluate(config, workdir, data=data)
  params = jax.device_get(result["state"].params)
  np.savez(out, **{jax.tree_util.keystr(path): x for path, x in
                   jax.tree_util.tree_flatten_with_path(params)[0]})
  print(f"RESULT process {process_id}: step {result['step']} loss {result['train']['loss']}")


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
