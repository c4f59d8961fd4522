"""Parameter counts of a config's model, per module and in total.

  python -m gqn_jax.summary --config=gqn_jax/configs/paper.py [--json]
  python -m gqn_jax.summary --config=gqn_jax/configs/paper.py --config.model.share_cores=True
"""

import json
import math

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

from gqn_jax import cli
from gqn_jax import config as config_lib
from gqn_jax.model import GQN
from gqn_jax.train_step import init_params

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file.",
                                          lock_config=True)
_JSON = flags.DEFINE_bool("json", False, "Print one JSON line instead of a table.")


def parameter_counts(model_cfg: config_lib.ModelConfig) -> dict[str, int]:
  """{'<network>/<module>': count} for every module, from shapes alone (nothing is allocated)."""
  shapes = jax.eval_shape(lambda: init_params(GQN(model_cfg), jax.random.key(0)))
  counts = {}
  for network, modules in shapes.items():
    for module, leaves in modules.items():
      counts[f"{network}/{module}"] = sum(math.prod(x.shape) for x in jax.tree.leaves(leaves))
  return counts


def main(argv):
  del argv
  try:
    model_cfg = config_lib.model_config(_CONFIG.value.model)
  except config_lib.ConfigError as error:
    raise SystemExit(f"error: {error}") from None
  counts = parameter_counts(model_cfg)
  total = sum(counts.values())
  if _JSON.value:
    print(json.dumps({"total_params": total, "modules": counts}))
    return
  width = max(map(len, counts))
  print(f"{'module':<{width}}  {'parameters':>12}")
  for name, count in counts.items():
    print(f"{name:<{width}}  {count:>12,}")
  print(f"{'total':<{width}}  {total:>12,}")


def run():
  flags.mark_flags_as_required(["config"])
  cli.run(main, __name__)  # --help lists this module's flags (gqn_jax/cli.py).


if __name__ == "__main__":
  run()
