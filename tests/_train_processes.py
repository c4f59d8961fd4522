"""Subprocess of the multi-process tests: one process of a training run of NUM_PROCESSES.

  python tests/_train_processes.py WORKDIR OUT.npz PROCESS_ID NUM_PROCESSES PORT STEPS [all]

trains the tiny config to STEPS on synthetic global batches (tests/_train_synthetic.py, each
process feeding its own rows of every global batch) with trainer.train_and_evaluate and a
checkpoint every 3 steps, resuming what WORKDIR holds whatever number of processes wrote it;
``all`` also evaluates and draws pictures at STEPS. Saves this process's copy of the final
parameters to OUT.npz. NUM_PROCESSES=1 is the single-process reference (PORT unused).
"""

import sys

import jax


def main(workdir, out, process_id: int, num_processes: int, port: int, steps: int,
         everything: bool):
  from gqn_jax import parallel  # pylint: disable=g-import-not-at-top
  if num_processes > 1:
    parallel.initialize(f"localhost:{port}", num_processes, process_id)
  import numpy as np  # pylint: disable=g-import-not-at-top
  import _train_synthetic  # pylint: disable=g-import-not-at-top
  import _train_tiny_config  # pylint: disable=g-import-not-at-top
  from gqn_jax import trainer  # pylint: disable=g-import-not-at-top
  assert jax.process_count() == num_processes and jax.process_index() == process_id
  config = _train_tiny_config.get_config()
  config.train.update(num_steps=steps, checkpoint_every_steps=3)
  if everything:
    config.train.update(eval_every_steps=steps, image_every_steps=steps)
  data = _train_synthetic.data(config, process_id, num_processes)
  result = trainer.train_and_evaluate(config, workdir, data=data)
  params = jax.device_get(result["state"].params)
  np.savez(out, **{jax.tree_util.keystr(path): x for path, x in
                   jax.tree_util.tree_flatten_with_path(params)[0]})
  print(f"RESULT process {process_id}: step {result['step']}")


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7]),
       everything=sys.argv[7:] == ["all"])
