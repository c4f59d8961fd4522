"""What every console script (setup.cfg's gqn-train, gqn-evaluate, ...) shares.

``--help``: absl lists the key flags of the main module, which it finds by ``sys.argv[0]``. A
console script's ``sys.argv[0]`` is the generated wrapper (``.venv/bin/gqn-train``), which
defines no flags, so ``--help`` said only "Try --helpfull". ``run`` makes the flags of the
gqn_jax module that defines them key flags of ``sys.argv[0]`` too.

A missing optional dependency (gqn_jax/extras.py) ends the command with its one-line message.
"""

import sys
from typing import Callable

from absl import app
from absl import flags

from gqn_jax import extras


def adopt_key_flags(module_name: str, flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Makes the flags of ``module_name`` key flags of the running program (``sys.argv[0]``)."""
  main = sys.argv[0]
  for flag in flag_values.get_key_flags_for_module(module_name):
    flag_values.register_key_flag_for_module(main, flag)


def run(main: Callable, module_name: str) -> None:
  """``app.run(main)`` with ``--help`` listing ``module_name``'s flags; see the module doc."""
  adopt_key_flags(module_name)
  try:
    app.run(main)
  except extras.MissingExtraError as error:
    sys.exit(f"error: {error}")
