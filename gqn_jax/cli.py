"""What every console script (setup.cfg's gqn-train, gqn-evaluate, ...) shares: XLA's CPU
flags, ``--help`` and error reporting.

``--help``: absl lists the key flags of the main module, which it finds by ``sys.argv[0]``. A
console script's ``sys.argv[0]`` is the generated wrapper (``.venv/bin/gqn-train``), which
defines no flags, so ``--help`` said only "Try --helpfull". ``run`` makes the flags of the
gqn_jax module that defines them key flags of ``sys.argv[0]`` too.

Errors a user can act on (a missing file or dataset, a bad value, an unreadable checkpoint, a
full disk, a missing optional dependency (gqn_jax/extras.py): OSError, ValueError, RuntimeError,
FloatingPointError, ImportError and their subclasses) end the command with ``error: <message>``
on stderr and exit status 1: the messages name what to change, and a traceback above them buries
that. ``--verbosity=1`` (or ``-v 1``) shows the traceback as well. Other exceptions (TypeError,
AttributeError, ...) are bugs and keep their traceback.
"""

import functools
import os
import sys
from typing import Callable

from absl import app
from absl import flags

from gqn_jax import xla_flags


def adopt_key_flags(module_name: str, flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Makes the flags of ``module_name`` key flags of the running program (``sys.argv[0]``)."""
  main = sys.argv[0]
  for flag in flag_values.get_key_flags_for_module(module_name):
    flag_values.register_key_flag_for_module(main, flag)


# What a user's mistake or the environment raises, as opposed to a bug in the program.
USER_ERRORS = (OSError, ValueError, RuntimeError, FloatingPointError, ImportError)
ERROR_EXIT_CODE = 1


def run(main: Callable, module_name: str) -> None:
  """``app.run(main)`` with ``--help`` listing ``module_name``'s flags; see the module doc.

  First, XLA's CPU flags (gqn_jax/xla_flags.py says which and why), before ``main`` can start
  JAX: every console script gets them, and none has to remember to set them.
  """
  xla_flags.set_cpu_flags()
  adopt_key_flags(module_name)
  app.run(functools.partial(_reporting_errors, main))


def _reporting_errors(main: Callable, argv):
  """Runs ``main``; a user error becomes its message alone (the traceback with -v 1)."""
  try:
    from gqn_jax import extras  # pylint: disable=g-import-not-at-top
    extras.check_cloud_storage(flags.FLAGS.flag_values_dict().values())
    return main(argv)
  except app.UsageError:
    raise  # absl prints the usage line and the message itself.
  except USER_ERRORS as error:
    if flags.FLAGS.is_parsed() and flags.FLAGS.verbosity >= 1:
      raise
    message = str(error).strip() or type(error).__name__
    if not message.startswith("error:"):
      message = f"error: {message}"
    print(message, file=sys.stderr)
    _silence_stderr()
    sys.exit(ERROR_EXIT_CODE)


def _silence_stderr() -> None:
  """Points file descriptor 2 at /dev/null once the message is out.

  A failed restore or save leaves TensorStore operations in flight; when they complete during
  interpreter shutdown they print 'RuntimeError: Event loop is closed' tracebacks (sys.excepthook
  is gone by then, so checkpoints' filter cannot catch them), under the message that matters.
  """
  sys.stderr.flush()
  devnull = os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, 2)
  os.close(devnull)
