"""Checkpoints of a training run, with orbax: save, keep, restore, and load for inference.

A run's workdir holds ``config.json`` (the resolved config) and ``checkpoints/<step>/`` with
three items per step:

* ``state``: the TrainState (step, params, optimizer state), as an orbax PyTree;
* ``data``: each process's grain iterator state (``process_<i>-of-<n>.json``), so that a
  resumed run reads exactly the batches the uninterrupted run would have read;
* ``config``: the config the step was written with, checked against the resuming run's.

Saves are asynchronous (the arrays are copied to host before ``save`` returns, so the next
step may donate them); an interrupted save leaves only a temporary directory, which the next
run deletes, so the latest *complete* step is always the one restored. The last
``max_to_keep`` steps are kept, and, with ``keep_best``, the step of lowest eval loss.

For evaluation and figures, the one loader (``load_for_inference`` is its (config, params))::

  run = checkpoints.load("runs/rooms")                  # latest step: run.params, run.step, ...
  config, params = checkpoints.load_for_inference("runs/rooms", step=20000)
"""

import dataclasses
import json
import logging
import os
import pathlib
from typing import Any, Mapping

from etils import epath
import jax
import ml_collections
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as preservation

from gqn_jax import config as config_lib
from gqn_jax import train_step
from gqn_jax.model import GQN

CHECKPOINT_DIR = "checkpoints"
CONFIG_FILE = "config.json"
ITEMS = ("state", "data", "config")
EVAL_METRIC = "eval_loss"

# Fields that fix the parameter tree's shapes or what the parameters mean. A checkpoint
# written with other values cannot be resumed; all other fields (learning rate, batch size,
# intervals, compute dtype, remat, ...) may change between runs.
ARCHITECTURE_FIELDS = (
    "model.image_size", "model.representation", "model.r_channels", "model.steps",
    "model.hidden_channels", "model.canvas_channels", "model.latent_channels",
    "model.kernel_size", "model.share_cores", "model.pose_order",
)
# Clipping adds a level to the optimizer state's tree: on or off must match, not the value.
CLIPPING_FIELD = "optim.grad_clip_norm"


class CheckpointNotFoundError(FileNotFoundError):
  """A workdir (or step) without a checkpoint."""


class IncompatibleCheckpointError(ValueError):
  """A checkpoint written with a config whose parameters cannot be loaded into this one's."""


def _lookup(config: Mapping[str, Any], dotted: str):
  section, field = dotted.split(".")
  return config.get(section, {}).get(field, "<unset>")


def config_mismatches(saved: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
  """Lines naming each architecture field on which ``saved`` and ``config`` differ."""
  lines = []
  for name in ARCHITECTURE_FIELDS:
    old, new = _lookup(saved, name), _lookup(config, name)
    if old != new:
      lines.append(f"config.{name}: checkpoint {old!r}, this run {new!r}")
  old, new = _lookup(saved, CLIPPING_FIELD), _lookup(config, CLIPPING_FIELD)
  clipped = lambda value: isinstance(value, (int, float)) and value > 0
  if clipped(old) != clipped(new):
    lines.append(f"config.{CLIPPING_FIELD}: checkpoint {old!r}, this run {new!r} (clipping on "
                 f"or off changes the optimizer state)")
  return lines


def config_to_dict(config) -> dict[str, Any]:
  """A JSON-able dict of a ConfigDict (or a dict)."""
  if isinstance(config, ml_collections.ConfigDict):
    return json.loads(config.to_json_best_effort())
  return json.loads(json.dumps(dict(config), default=str))


def write_config(workdir, config) -> epath.Path:
  """Writes the resolved config to ``<workdir>/config.json`` (process 0 only)."""
  path = epath.Path(workdir) / CONFIG_FILE
  if jax.process_index() == 0:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config_to_dict(config), indent=2, sort_keys=True) + "\n")
  return path


def _absolute(path) -> epath.Path:
  """orbax (tensorstore) needs absolute paths; URLs such as gs://... are left as they are."""
  return epath.Path(path if "://" in str(path) else os.path.abspath(path))


def _abstract(tree, sharding):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


class Checkpointer:
  """The checkpoints of one workdir: an orbax CheckpointManager and the rules above."""

  def __init__(self, workdir, *, max_to_keep: int = 3, keep_best: bool = False,
               async_save: bool = True, read_only: bool = False):
    if max_to_keep < 1:
      raise ValueError(f"max_to_keep must be at least 1, got {max_to_keep}")
    self.workdir = _absolute(workdir)
    self.directory = self.workdir / CHECKPOINT_DIR
    policies = [preservation.LatestN(max_to_keep)]
    if keep_best:
      # reverse=True sorts the losses from high to low, so the lowest is the one kept.
      policies.append(preservation.BestN(
          get_metric_fn=lambda metrics: metrics[EVAL_METRIC], reverse=True, n=1,
          keep_checkpoints_without_metrics=False))
    options = ocp.CheckpointManagerOptions(
        preservation_policy=None if read_only else preservation.AnyPreservationPolicy(policies),
        enable_async_checkpointing=async_save, cleanup_tmp_directories=not read_only,
        read_only=read_only, create=not read_only)
    self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=ITEMS)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def save(self, step: int, state, config, data_iterator=None,
           eval_loss: float | None = None) -> bool:
    """Starts an asynchronous save of ``state`` (whose ``step`` field equals ``step``)."""
    items = dict(state=ocp.args.PyTreeSave(state),
                 config=ocp.args.JsonSave(config_to_dict(config)))
    if data_iterator is not None:
      import grain  # pylint: disable=g-import-not-at-top
      items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
    metrics = None if eval_loss is None else {EVAL_METRIC: float(eval_loss)}
    return self.manager.save(step, args=ocp.args.Composite(**items), metrics=metrics,
                             force=True)

  def saved_config(self, step: int) -> dict[str, Any]:
    restored = self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    return dict(restored.config)

  def check_compatible(self, step: int, config) -> None:
    """Raises IncompatibleCheckpointError naming every architecture field that differs."""
    mismatches = config_mismatches(self.saved_config(step), config_to_dict(config))
    if mismatches:
      raise IncompatibleCheckpointError(
          f"checkpoint {self.directory}/{step} was written with a config incompatible with "
          f"this run's:\n  " + "\n  ".join(mismatches) + "\nUse another --workdir, or the "
          f"checkpoint's values (its config is in {self.workdir / CONFIG_FILE}).")

  def restore(self, step: int, abstract_state, config, data_iterator=None):
    """The state at ``step``, placed as ``abstract_state``'s shardings say (any device count).

    ``abstract_state`` is a pytree of ``jax.ShapeDtypeStruct`` with shardings; ``config`` is
    this run's, checked first. ``data_iterator``, if given, continues where the run stopped.
    """
    self.check_compatible(step, config)
    args = ocp.args.PyTreeRestore(
        item=abstract_state, restore_args=ocp.checkpoint_utils.construct_restore_args(
            abstract_state))
    try:
      state = self.manager.restore(step, args=ocp.args.Composite(state=args)).state
    except ValueError as error:  # e.g. a shape that the config check could not foresee.
      raise IncompatibleCheckpointError(
          f"checkpoint {self.directory}/{step} does not fit this run's state: {error}") from None
    if data_iterator is not None:
      self._restore_data(step, data_iterator, int(state.step))
    return state

  def _restore_data(self, step: int, iterator, state_step: int) -> None:
    """Sets the grain iterator to its saved state (this process's file)."""
    index, count = jax.process_index(), jax.process_count()
    data_dir = self.directory / str(step) / "data"
    path = data_dir / f"process_{index}-of-{count}.json"
    if path.exists():
      iterator.set_state(json.loads(path.read_text()))
      return
    # Written by another number of processes: a plain iterator's state is the index of the
    # next batch, which is the same on every process; anything else cannot be mapped.
    if set(iterator.get_state()) == {"next_index"}:
      logging.warning("%s has no data state for process %d of %d; continuing at batch %d",
                      data_dir, index, count, state_step)
      iterator.set_state({"next_index": state_step})
    else:
      logging.warning("%s has no data state for process %d of %d; the input starts afresh",
                      data_dir, index, count)

  def reached_preemption(self, step: int) -> bool:
    return self.manager.reached_preemption(step)

  def wait_until_finished(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()


def _read_config(workdir: epath.Path, checkpointer: Checkpointer, step: int):
  try:
    return checkpointer.saved_config(step)
  except (FileNotFoundError, KeyError, ValueError):
    path = workdir / CONFIG_FILE
    if not path.exists():
      raise CheckpointNotFoundError(
          f"checkpoint {checkpointer.directory}/{step} has no config and {path} does not "
          f"exist") from None
    return json.loads(path.read_text())


@dataclasses.dataclass(frozen=True)
class Checkpoint:
  """A trained run, loaded for inference."""
  workdir: pathlib.Path                 # as given (for messages and records).
  step: int                             # the checkpoint's training step.
  config: Any                           # the run's resolved ml_collections.ConfigDict.
  model_config: config_lib.ModelConfig
  params: Any


def load(workdir, step: int | None = None) -> Checkpoint:
  """The run in ``workdir`` at ``step`` (default its latest checkpoint), for inference.

  Parameters come back as jax arrays on this process's first device, whatever the number of
  devices the run trained on.

  Raises:
    FileNotFoundError: ``workdir`` is not a directory.
    CheckpointNotFoundError: the workdir has no checkpoint, or none at ``step``.
    IncompatibleCheckpointError: the parameters do not fit the config's model.
  """
  given = pathlib.Path(workdir)
  if "://" not in str(workdir) and not given.is_dir():
    raise FileNotFoundError(f"--workdir={given}: no such directory")
  config, params, step = _load(workdir, step)
  return Checkpoint(given, step, config, config_lib.model_config(config.model), params)


def load_for_inference(workdir, step: int | None = None
                       ) -> tuple[ml_collections.ConfigDict, Any]:
  """``load``'s config and parameters: (the run's resolved config, its step's parameters)."""
  config, params, _ = _load(workdir, step)
  return config, params


def _load(workdir, step: int | None):
  workdir = _absolute(workdir)
  directory = workdir / CHECKPOINT_DIR
  if not directory.exists():
    raise CheckpointNotFoundError(
        f"no checkpoint in workdir {workdir} ({directory} does not exist); train one with\n"
        f"  python -m gqn_jax.train --config=<config file> --workdir={workdir}")
  checkpointer = Checkpointer(workdir, read_only=True)
  try:
    steps = checkpointer.all_steps()
    if not steps:
      raise CheckpointNotFoundError(f"no complete checkpoint in {directory}")
    if step is None:
      step = max(steps)
    elif step not in steps:
      raise CheckpointNotFoundError(f"no checkpoint of step {step} in {directory}; it has "
                                    f"steps {sorted(steps)}")
    config = ml_collections.ConfigDict(_read_config(workdir, checkpointer, step))
    model = GQN(config_lib.model_config(config.model))
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    params = jax.eval_shape(lambda: train_step.init_params(model, jax.random.key(0)))
    target = {"params": _abstract(params, device)}
    args = ocp.args.PyTreeRestore(
        item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
        partial_restore=True)
    try:
      restored = checkpointer.manager.restore(step, args=ocp.args.Composite(state=args))
    except ValueError as error:
      raise IncompatibleCheckpointError(
          f"{directory}/{step}: the parameters do not fit the model of its config "
          f"{workdir / CONFIG_FILE}: {error}") from None
    return config, restored.state["params"], step
  finally:
    checkpointer.close()


def abstract_state(model: GQN, optim_cfg, sharding):
  """The TrainState's shapes and dtypes, with ``sharding`` on every leaf, for restoring."""
  shapes = jax.eval_shape(lambda: train_step.create_train_state(model, optim_cfg,
                                                                jax.random.key(0)))
  return _abstract(shapes, sharding)
