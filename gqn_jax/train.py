r"""Trains a GQN: ``python -m gqn_jax.train --config=<config file> --workdir=<dir>``.

Only flags live here; the loop is ``trainer.train_and_evaluate``. Any config field can be set
on the command line, e.g.::

  python -m gqn_jax.train --config=gqn_jax/configs/demo.py --workdir=runs/demo \
      --config.train.num_steps=500 --config.model.dtype=bfloat16

Rerunning the same command resumes from the workdir's latest checkpoint. Several processes
(one per host) train together with ``--coordinator_address=host0:1234 --num_processes=N
--process_id=i``, or with ``--distributed=on`` where JAX finds them itself (Cloud TPU pods,
SLURM); see experiments/README.md.
"""

import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from gqn_jax import allocator
from gqn_jax import cli
from gqn_jax import parallel

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file (a .py with get_config()), e.g. gqn_jax/configs/paper.py; "
    "override fields with --config.<section>.<field>=<value>.", lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Run directory: config.json, checkpoints/, tensorboard/, images/. "
    "An existing one is resumed.")
_DISTRIBUTED = flags.DEFINE_enum(
    "distributed", "auto", parallel.DISTRIBUTED_MODES,
    "Multi-process JAX: 'auto' starts it when a coordinator flag is given or a SLURM/Open MPI "
    "launch of several processes is detected; 'on' always (JAX detects Cloud TPU pods); 'off'.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0, for multi-process training.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0-based.")


class _QuietOrbax(logging.logging.Filter):
  """Keeps orbax's per-save INFO lines (dozens per checkpoint) out of the log; warnings stay."""

  def filter(self, record):
    return record.levelno >= logging.logging.WARNING or "/orbax/" not in record.pathname


def main(argv):
  logging.get_absl_handler().addFilter(_QuietOrbax())
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    parallel.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                        _DISTRIBUTED.value)
  except ValueError as error:
    raise app.UsageError(f"--distributed / --coordinator_address / --num_processes / "
                         f"--process_id: {error}") from None
  # Imported after jax.distributed starts: nothing may touch a JAX backend before it.
  from gqn_jax import checkpoints  # pylint: disable=g-import-not-at-top
  from gqn_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  from gqn_jax import trainer  # pylint: disable=g-import-not-at-top
  try:
    result = trainer.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (config_lib.ConfigError, checkpoints.IncompatibleCheckpointError,
          trainer.NonFiniteLossError) as error:
    print(f"error: {error}", file=sys.stderr)  # the message alone: it names what to change.
    sys.exit(1)
  if result["preempted"]:
    print(f"stopped by SIGTERM after saving step {result['step']} in {_WORKDIR.value}; rerun "
          f"the same command to continue (exit status {trainer.PREEMPTED_EXIT_CODE})")
    sys.exit(trainer.PREEMPTED_EXIT_CODE)
  summary = f"finished at step {result['step']} in {_WORKDIR.value}"
  if result["train"]:
    summary += f"; train loss {result['train']['loss']:.1f}"
  if result["eval"]:
    summary += f"; eval loss {result['eval']['loss']:.1f} (at sigma_final)"
  print(summary)
  if result["image"]:
    print(f"picture: {result['image']}")


def run():
  """Console-script entry point (``gqn-train``)."""
  # CPU-only hosts, before JAX starts: tcmalloc (gqn_jax/allocator.py says why); cli.run sets
  # XLA's CPU flags.
  allocator.use_tcmalloc()
  flags.mark_flags_as_required(["config", "workdir"])
  cli.run(main, __name__)  # --help lists this module's flags (gqn_jax/cli.py).


if __name__ == "__main__":
  run()
