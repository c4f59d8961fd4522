"""XLA's memory accounting of the train step, from compilation alone (nothing runs).

  make bench-memory    # .venv/bin/python -m experiments.memory_analysis --batch 4 36
  .venv/bin/python -m experiments.memory_analysis --batch 4 --remat false --dtype bfloat16

Prints, per (batch, remat, dtype): the arguments (parameters and Adam state, updated in place
since the state is donated) and the temporaries (gradients, activations kept for the backward pass,
scratch) of the paper model's step. Unlike a process's resident set, this excludes the JAX
runtime and the compiler, so it is the step's own need on any backend.
"""

import dataclasses
import json

from experiments import harness
from gqn_jax import config as config_lib
from gqn_jax import train_step as ts
from gqn_jax.configs import paper
from gqn_jax.model import GQN


def analyse(batch: int, remat: bool, context_views: int, dtype: str = "float32") -> dict:
  config = paper.get_config()
  model_cfg = dataclasses.replace(config_lib.model_config(config.model), remat=remat,
                                  dtype=dtype)
  optim_cfg = config_lib.optim_config(config.optim)
  memory = ts.compiled_step_memory(GQN(model_cfg), optim_cfg, batch, context_views)
  mib = lambda n: round(n / 2**20)
  return {"batch": batch, "remat": remat, "dtype": dtype, "context_views": context_views,
          "arguments_mib": mib(memory.argument_size_in_bytes),
          "temporaries_mib": mib(memory.temp_size_in_bytes)}


def main(argv=None):
  parser = harness.parser(__doc__)
  parser.add_argument("--batch", type=int, nargs="+", default=[4, 36])
  parser.add_argument("--remat", nargs="+", default=["false", "true"],
                      choices=["false", "true"])
  parser.add_argument("--context_views", type=int, default=5)
  parser.add_argument("--dtype", nargs="+", default=["float32"], choices=config_lib.DTYPES,
                      help="compute dtype(s)")
  args = parser.parse_args(argv)
  records = []
  for batch in args.batch:
    for remat in args.remat:
      for dtype in args.dtype:
        records.append(analyse(batch, remat == "true", args.context_views, dtype))
        print(json.dumps(records[-1]), flush=True)
  harness.write_results(args.output, records)


if __name__ == "__main__":
  harness.prepare_process()  # before JAX starts: remat's barriers on the CPU
  main()
